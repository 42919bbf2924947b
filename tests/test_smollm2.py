"""The real SmolLM2-135M-Instruct (Q4_1) through rys build and llama.cpp."""

import numpy as np
import pytest
from click.testing import CliRunner

from support.llama_ref import llama_logits
from rys.surgery import rewrite
from rys.cli import cli
from rys.core.model import load

PROMPT_TOKENS = None


def _tokens(path):
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=64, vocab_only=True, verbose=False)
    try:
        return llm.tokenize(b"The quick brown fox jumps over the lazy dog because", add_bos=True)
    finally:
        llm.close()


def test_smollm2_identity_path_is_bit_identical(smollm2, tmp_path):
    out = rewrite.build(smollm2, "path:0-29", tmp_path / "id.gguf").out
    toks = _tokens(smollm2)
    assert np.array_equal(llama_logits(smollm2, toks), llama_logits(out, toks))


@pytest.mark.slow  # ~15 s each on 2 cores
@pytest.mark.parametrize("spec,n_layers", [("4-7", 34), ("10-17", 38), ("1-2,20-23", 36), ("path:0-9,12-29", 28)])
def test_smollm2_blocks_build_load_and_decode(smollm2, tmp_path, spec, n_layers):
    out = rewrite.build(smollm2, spec, tmp_path / "m.gguf").out
    m = load(out)
    assert m.n_layer_all == n_layers
    assert {t.type_name for t in m.file.tensors} == {t.type_name for t in load(smollm2).file.tensors}
    r = CliRunner().invoke(cli, ["verify", str(out), "--json", "--tokens", "4"])
    assert r.exit_code == 0, r.output
    toks = _tokens(smollm2)
    got = llama_logits(out, toks)
    assert np.isfinite(got).all()
    assert not np.allclose(got, llama_logits(smollm2, toks), atol=1e-2)


def test_smollm2_inspect(smollm2):
    r = CliRunner().invoke(cli, ["inspect", str(smollm2), "--json"])
    import json

    d = json.loads(r.output)
    assert d["architecture"] == "llama" and d["block_count"] == 30 and d["extra_layers"] == 0
    assert set(d["tensor_types"]) >= {"Q4_1", "F32"}
