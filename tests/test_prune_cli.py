"""`rys prune` as a user meets it: output, one-line errors, nothing left behind."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.torch

torch = pytest.importorskip("torch")
pytest.importorskip("transformers", minversion="5.2")

from support.hf_checkpoints import CALIB_TEXT, write_checkpoint  # noqa: E402

from rys.cli import cli  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    out = {arch: write_checkpoint(arch, root / arch, seed=2) for arch in ("llama", "qwen2")}
    gpt = root / "gpt2"
    shutil.copytree(out["llama"], gpt)
    cfg = json.loads((gpt / "config.json").read_text())
    (gpt / "config.json").write_text(json.dumps(dict(cfg, model_type="gpt2", architectures=["GPT2LMHeadModel"])))
    out["gpt2"] = gpt
    (root / "calib.txt").write_text(CALIB_TEXT)
    out["calib"] = root / "calib.txt"
    return out


def invoke(*args):
    return CliRunner().invoke(cli, ["prune", *map(str, args)])


def test_prune_prints_the_folder_and_a_summary(models, tmp_path):
    out = tmp_path / "small"
    r = invoke(models["llama"], "-o", out, "--heads", "2", "--mlp", "0.25", "--multiple", "8",
               "--calib", models["calib"], "--calib-tokens", "200", "-q")
    assert r.exit_code == 0, r.output
    assert r.stdout == f"{out}\n"
    note, summary = r.stderr.splitlines()
    assert note.startswith("note: MLP width 48 is not a multiple of 256")
    assert summary.startswith("llama, 3 layers: query heads 4 -> 2, MLP 64 -> 48; parameters 0.04M -> 0.03M "
                              "(activation on 200 tokens) in ")
    assert json.loads((out / "rys_prune.json").read_text())["calib"]["tokens"] == 200


def test_notes_go_to_stderr(models, tmp_path):
    r = invoke(models["llama"], "-o", tmp_path / "o", "--mlp", "40", "--multiple", "8", "--criterion", "magnitude",
               "--calib", models["calib"], "-q")
    assert r.exit_code == 0, r.output
    assert "note: --criterion magnitude reads no calibration text: --calib ignored\n" in r.stderr
    assert "note: MLP width 40 is not a multiple of 256: llama-quantize falls back" in r.stderr


def test_force_replaces_an_existing_output(models, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "old.txt").write_text("old")
    r = invoke(models["llama"], "-o", out, "--mlp", "0.5", "--multiple", "8", "--criterion", "random", "--force", "-q")
    assert r.exit_code == 0, r.output
    assert not (out / "old.txt").exists() and (out / "model.safetensors").exists()
    assert sorted(os.listdir(tmp_path)) == ["o"]


RANDOM = ["--criterion", "random", "--multiple", "8"]
BAD = [
    ("gpt2", ["--mlp", "0.5", *RANDOM], "rys prune cannot prune GPT2LMHeadModel (model_type gpt2): it knows LlamaForCausalLM"),
    ("llama", ["--heads", "1.5", *RANDOM], "--heads 1.5: a fraction must be between 0 and 1, both excluded"),
    ("llama", ["--heads", "0", *RANDOM], "--heads 0: a number must be at least 1"),
    ("llama", ["--mlp", "half", *RANDOM], "--mlp half: give a fraction between 0 and 1"),
    ("llama", ["--kv-heads", "2", *RANDOM], "--kv-heads 2 would leave no KV head (each layer has 2)"),
    ("llama", ["--heads", "4", *RANDOM], "--heads 4 would leave no query head (each KV group has 2)"),
    ("llama", ["--heads", "3", *RANDOM], "--heads 3 does not divide evenly over 2 KV groups (each keeps the same number of query heads): use one of 2"),
    ("llama", ["--heads", "0.1", *RANDOM], "--heads 0.1 removes no query head: each KV group has 2"),
    ("llama", ["--mlp", "64", *RANDOM], "--mlp 64 keeps the whole MLP (64 channels)"),
    ("llama", ["--mlp", "44", *RANDOM], "--mlp 44 is not a multiple of --multiple 8: use 40 or 48"),
    ("llama", ["--mlp", "0.25", "--criterion", "random"], "the MLP is 64 channels wide, below --multiple 256: pass a smaller --multiple"),
    ("llama", ["--deltanet-v-heads", "1", *RANDOM], "--deltanet-v-heads: llama has no Gated DeltaNet layers"),
    ("llama", ["--mlp", "0.5", "--multiple", "8"], "--criterion activation needs calibration text: pass --calib FILE"),
    ("llama", ["--mlp", "0.5", "--multiple", "8", "--calib", "{missing}"], "calibration file {missing}: no such file"),
    ("llama", RANDOM, "nothing to prune: give --heads, --kv-heads, --mlp or --deltanet-v-heads"),
    ("llama", ["--mlp", "0.5", *RANDOM, "-o", "{existing}"], "the output {existing} exists; use --force to replace it"),
    ("qwen2", ["--heads", "0.5", *RANDOM], "--heads cannot prune qwen2: llama.cpp's qwen2 fixes attn_q and attn_output"),
    ("qwen2", ["--kv-heads", "1", *RANDOM], "--kv-heads cannot prune qwen2: llama.cpp's qwen2 fixes"),
    ("{nomodel}", ["--mlp", "0.5", *RANDOM], "{nomodel}: no such folder"),
]


@pytest.mark.parametrize("model, args, message", BAD, ids=[m.split(":")[0][:40] for _, _, m in BAD])
def test_bad_input_is_one_line_and_leaves_nothing(model, args, message, models, tmp_path):
    (tmp_path / "existing").mkdir()
    subs = {"missing": tmp_path / "none.txt", "existing": tmp_path / "existing", "nomodel": tmp_path / "nomodel"}
    out = ["-o", str(tmp_path / "out")] if "-o" not in args else []
    src = models.get(model) or model.format(**subs)
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(models["llama"]))
    r = invoke(src, *out, *[a.format(**subs) for a in args])
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert r.stdout == ""
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message.format(**subs) in r.stderr
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(models["llama"]))) == before


def test_an_interrupted_prune_leaves_nothing(models, tmp_path, monkeypatch):
    from rys.checkpoint.hf import folder as hf_checkpoint

    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("the old output")
    calls = []

    def write(self, name, tensor):
        calls.append(name)
        if len(calls) == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(hf_checkpoint.StreamWriter, "write", write)
    r = invoke(models["llama"], "-o", out, "--mlp", "0.5", *RANDOM, "--force", "-q")
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit) and "Aborted" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["o"] and os.listdir(out) == ["keep.txt"]


def test_help_names_every_option():
    r = CliRunner().invoke(cli, ["prune", "--help"])
    assert r.exit_code == 0
    for option in ("--heads", "--kv-heads", "--mlp", "--deltanet-v-heads", "--criterion", "--calib", "--calib-tokens",
                   "--multiple", "--seed", "--mask-only", "--force"):
        assert option in r.output


def test_the_cli_lists_the_library_criteria():
    from rys.cli.prune import CRITERIA as cli_criteria
    from rys.checkpoint.prune.importance import CRITERIA

    assert cli_criteria == CRITERIA
