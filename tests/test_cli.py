"""The CLI as a user meets it: exit codes, exact output, one-line errors."""

import json
import os

import pytest
from click.testing import CliRunner

from rys.cli import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_inspect_json_qwen(qwen8_mtp):
    r = run("inspect", qwen8_mtp, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["architecture"] == "qwen35"
    assert d["block_count"] == 8 and d["extra_layers"] == 1 and d["period"] == 4
    assert [x["kind"] for x in d["layers"]] == ["deltanet"] * 3 + ["attention"] + ["deltanet"] * 3 + ["attention"] * 2
    assert [x["index"] for x in d["layers"]] == list(range(9))
    assert d["layers"][8]["extra"] is True
    assert d["tensor_types"] == {"F32": sum(x["tensors"] for x in d["layers"]) + 3}


def test_inspect_text_gemma(gemma12):
    r = run("inspect", gemma12)
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert "  architecture      gemma3" in lines
    assert "  layers            12" in lines
    assert "  layer kinds       swa/global, from gemma3.attention.sliding_window_pattern = 6" in lines
    assert lines[-4:] == ["    0-4      swa", "    5        global", "    6-10     swa", "    11       global"]


def test_build_prints_the_output_path(llama8, tmp_path):
    src = tmp_path / "m.gguf"
    src.write_bytes(llama8.read_bytes())
    r = CliRunner().invoke(cli, ["build", str(src), "2-4", "-q"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "m-rys_2-4.gguf"
    assert r.stdout.strip() == str(out)
    assert "11 layers: 0-4,2-7;" in r.stderr
    assert out.exists()


def test_build_auto_layout_note(qwen8, tmp_path):
    r = CliRunner().invoke(cli, ["build", str(qwen8), "1-3", "-o", str(tmp_path / "o.gguf"), "-q"])
    assert r.exit_code == 0
    assert "note: wrote per-layer qwen35.attention.recurrent_layers" in r.stderr


BAD = [
    (["build", "{dir}", "1-2"], "is a directory"),
    (["build", "{missing}", "1-2"], "no such file"),
    (["build", "{text}", "1-2"], "not a GGUF file"),
    (["build", "{truncated}", "1-2"], "truncated"),
    (["build", "{model}", "1-99"], "out of range: the model has layers 0-7"),
    (["build", "{model}", "5-2"], "runs backwards"),
    (["build", "{model}", "x"], "malformed range 'x'"),
    (["build", "{qwen}", "1-3", "--layout", "interval"], "nearest blocks that keep it"),
    (["build", "{model}", "1-2", "-o", "{existing}"], "exists; use --force"),
    (["build", "{model}", "1-2", "-o", "{nofolder}"], "output folder"),
    (["inspect", "{truncated}"], "truncated"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_is_one_line_and_leaves_nothing(args, message, llama8, qwen8, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "t.gguf").write_text("hello, not a model\n")
    data = llama8.read_bytes()
    (tmp_path / "trunc.gguf").write_bytes(data[: len(data) // 2])
    (tmp_path / "existing.gguf").write_bytes(b"x")
    subs = {"dir": tmp_path / "d", "missing": tmp_path / "nope.gguf", "text": tmp_path / "t.gguf",
            "truncated": tmp_path / "trunc.gguf", "model": llama8, "qwen": qwen8,
            "existing": tmp_path / "existing.gguf", "nofolder": tmp_path / "no" / "x.gguf"}
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(llama8.parent))
    r = CliRunner().invoke(cli, [a.format(**subs) for a in args])
    assert r.exit_code == 1
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert r.stdout == ""
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(llama8.parent))) == before


def test_unknown_layout_is_a_usage_error(llama8):
    r = CliRunner().invoke(cli, ["build", str(llama8), "1-2", "--layout", "zig"])
    assert r.exit_code == 2 and "Invalid value for '--layout'" in r.stderr


@pytest.mark.parametrize("args, option", [
    (["--block", "0"], "--block"), (["--stride", "-1"], "--stride"), (["--limit", "0"], "--limit"),
    (["--concurrency", "0"], "--concurrency"), (["--holdout", "-2"], "--holdout"), (["--threads", "0"], "--threads"),
])
def test_sweep_refuses_out_of_range_numbers_before_doing_anything(args, option, llama8, tmp_path):
    out = tmp_path / "sweep"
    r = CliRunner().invoke(cli, ["sweep", str(llama8), *args, "--out", str(out)])
    assert r.exit_code == 2 and f"Invalid value for '{option}'" in r.stderr
    assert not out.exists()
