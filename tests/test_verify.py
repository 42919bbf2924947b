"""rys verify: llama.cpp's own reading of the file, compared with rys's."""

import json

import pytest
from click.testing import CliRunner

from support import tiny_models
from rys.surgery import rewrite
from rys.cli import cli


def test_verify_reports_llamas_layer_map(qwen8_mtp, tmp_path):
    out = rewrite.build(qwen8_mtp, "2-4", tmp_path / "q.gguf").out
    r = CliRunner().invoke(cli, ["verify", str(out), "--json", "--tokens", "3"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    src = ["deltanet"] * 3 + ["attention"] + ["deltanet"] * 3 + ["attention"]
    assert d["llama_kinds"] == [src[i] for i in [0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 7]] + ["extra"]
    assert d["n_decoded"] == 3 and len(d["tokens"]) == 3


def test_verify_gemma_text(gemma12, tmp_path):
    out = rewrite.build(gemma12, "2-5", tmp_path / "g.gguf").out
    r = CliRunner().invoke(cli, ["verify", str(out), "--tokens", "2"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[1:7] == ["    0-4      swa", "    5        global", "    6-8      swa",
                                          "    9        global", "    10-14    swa", "    15       global"]
    assert r.stdout.splitlines()[-1] == "logits finite: yes; layer kinds match rys: yes"


def test_verify_explains_a_file_llama_cannot_load(tmp_path):
    # The 35-layer trap of the brief, scaled down: a 3-layer block with only the
    # interval scalar puts attention tensors where llama.cpp expects DeltaNet.
    bad = tiny_models.write_model(tmp_path / "bad.gguf", "qwen35", 8, layer_path=[0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 7])
    r = CliRunner().invoke(cli, ["verify", str(bad)])
    assert r.exit_code == 1
    assert r.stderr.startswith("Error: llama.cpp could not load bad.gguf: ")
    assert "not found" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize("tokens", ["0", "-3"])
def test_verify_needs_at_least_one_token(llama8, tokens):
    """Zero decoded tokens would check no logits and still say they were finite."""
    r = CliRunner().invoke(cli, ["verify", str(llama8), "--tokens", tokens])
    assert r.exit_code == 2 and "--tokens" in r.output and "x>=1" in r.output
