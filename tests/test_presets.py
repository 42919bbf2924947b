"""Sweep presets (sweeps/*.toml): found by name or path, checked like the
command line, overridden by it, recorded, and cited by `rys report`."""

import json
import re

import pytest
from click.testing import CliRunner

from support import tiny_models
from rys.search import presets
from rys.cli import cli
from rys.cli.search import preset_settings, sweep_command
from rys.core.errors import RysError
from rys.search.report import sweep_command as reproduce_line
from rys.search.results import Store


def settings(preset: str, *argv: str) -> dict:
    """The options a preset gives `rys sweep m.gguf ARGV...`."""
    ctx = sweep_command.make_context("sweep", ["m.gguf", *argv])
    return preset_settings(ctx, presets.load_preset(preset))


def test_shipped_presets_are_the_seed_passes_and_the_demo():
    assert {"seed-pass1", "seed-pass2", "demo"} <= set(presets.available())
    assert settings("seed-pass1") == {"block": 8, "stride": 4, "suite": "math,eq,reasoning", "limit": 16}
    second = settings("seed-pass2")
    assert (second["block"], second["stride"], second["start"], second["end"]) == (4, 1, 8, 32)
    assert settings("demo")["mode"] == "choice"
    for name in presets.available():  # every shipped value passes the command line's own checks
        assert presets.load_preset(name).description


def test_the_command_line_wins_over_the_preset():
    got = settings("seed-pass1", "--block", "6", "--limit", "16")
    assert "block" not in got and "limit" not in got  # given on the command line, even at the default value
    assert got["stride"] == 4


def write(tmp_path, text: str, name: str = "mine.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("block = 0\n", r"mine.toml: block = 0: 0 is not in the range x>=1"),
    ("mode = 'fast'\n", r"mine.toml: mode = 'fast': 'fast' is not one of 'generate', 'choice'"),
    ("blok = 8\n", r"mine.toml: blok is not a sweep option; a preset may set .*block"),
    ("out = 'x'\n", r"out is not a sweep option"),
    ("block = [8\n", r"mine.toml: not valid TOML"),
])
def test_a_bad_preset_is_one_line_naming_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    r = CliRunner().invoke(cli, ["sweep", str(tmp_path / "none.gguf"), "--preset", str(path)])
    assert r.exit_code == 1 and r.stderr.count("\n") == 1
    assert re.search(message, r.stderr), r.stderr


def test_an_unknown_preset_lists_the_known_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, ["sweep", "m.gguf", "--preset", "nope"])
    assert r.exit_code == 1 and "no sweep preset 'nope'; choose from demo, seed-pass1, seed-pass2" in r.stderr
    with pytest.raises(RysError, match="no such file"):
        presets.load_preset("nope.toml")


def test_a_user_preset_in_the_working_folder_is_found_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweeps").mkdir()
    write(tmp_path / "sweeps", "block = 3\n", "three.toml")
    assert "three" in presets.available()
    assert settings("three") == {"block": 3}


def test_the_report_cites_the_preset_and_only_what_differs():
    config = {"model": "m.gguf", "preset": "seed-pass1", "block": 8, "stride": 4, "suite": "math,eq,reasoning",
              "limit": 16, "seed": 3, "mode": "generate", "halving": False, "end": None}
    assert reproduce_line(config, "m.gguf") == "rys sweep m.gguf --preset seed-pass1 --seed 3"
    config["preset"] = "gone-since"  # a preset that cannot be read any more: every option is spelled out
    line = reproduce_line(config, "m.gguf")
    assert "--preset" not in line and "--block 8 --stride 4" in line and "--seed 3" in line


@pytest.mark.server
def test_a_preset_sweep_writes_to_its_folder_and_reproduces(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tiny_models.write_model(tmp_path / "tiny.gguf", "llama", 8)
    (tmp_path / "sweeps").mkdir()
    write(tmp_path / "sweeps", 'description = "tiny"\nblock = 4\nstride = 4\nsuite = "math.arith"\nlimit = 2\n'
          'mode = "choice"\n', "tiny-pass.toml")
    r = CliRunner().invoke(cli, ["sweep", str(model), "--preset", "tiny-pass", "--limit", "3", "--concurrency", "1",
                                 "--threads", "1", "-q"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "sweeps" / "tiny-pass" / "tiny"
    assert r.stdout.strip() == str(out.relative_to(tmp_path))
    with Store(out) as store:
        config = store.get_meta("config")
        names = sorted(c.candidate for c in store.candidates())
    assert (config["preset"], config["block"], config["mode"], config["limit"]) == ("tiny-pass", 4, "choice", 3)
    assert names == ["0-3", "4-7", "baseline"]
    r = CliRunner().invoke(cli, ["report", str(out)])
    assert r.exit_code == 0, r.output
    report = (out / "report.md").read_text()
    assert f"rys sweep {model} --preset tiny-pass --limit 3 --concurrency 1 --threads 1" in report
    r = CliRunner().invoke(cli, ["rank", str(out), "--format", "json"])
    assert sorted(row["candidate"] for row in json.loads(r.stdout)) == names
