"""llama.cpp computes exactly the layer path: logits of a rewritten file equal
the logits of the same path built directly by the fixture builder."""

import numpy as np
import pytest

import tiny_models
from llama_ref import llama_logits
from rys import rewrite
from rys.model import load

CASES = [
    # arch, n_layers, n_extra, spec
    ("llama", 8, 0, "2-4"),
    ("llama", 8, 0, "1-2,5-6"),
    ("llama", 8, 0, "path:0-2,5-7"),  # deletion
    ("llama", 8, 0, "path:7-0"),  # reversal
    ("qwen35", 8, 0, "2-5"),  # a multiple of the interval: the scalar is kept
    ("qwen35", 8, 0, "2-4"),  # 3 layers: needs qwen35.attention.recurrent_layers
    ("qwen35", 8, 0, "0-1,4-6"),
    ("qwen35", 8, 0, "path:0-3,6-7"),
    ("qwen35", 8, 1, "4-7"),  # with an MTP layer after the trunk
    ("qwen35", 12, 1, "5-7"),
    ("gemma3", 12, 0, "0-5"),  # a whole period: the scalar is kept
    ("gemma3", 12, 0, "2-5"),  # 4 layers: needs the sliding_window_pattern array
]


@pytest.mark.parametrize("arch,n,extra,spec", CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_rewrite_equals_direct_build(arch, n, extra, spec, tmp_path):
    src = tiny_models.write_model(tmp_path / "src.gguf", arch, n, n_extra=extra)
    result = rewrite.build(src, spec, tmp_path / "rewritten.gguf")
    explicit = bool(result.plan.notes)  # auto layout wrote the per-layer array
    direct = tiny_models.write_model(tmp_path / "direct.gguf", arch, n, n_extra=extra,
                                     layer_path=result.plan.trunk_path, explicit_kinds=explicit)
    got, want = llama_logits(result.out), llama_logits(direct)
    assert got.shape == want.shape
    assert np.isfinite(got).all()
    assert np.array_equal(got, want)


def test_a_wrong_kind_map_changes_the_logits(tmp_path):
    """Control: the check above can fail. The same gemma3 path with the
    period left as a scalar (kinds shifted) computes something else."""
    src = tiny_models.write_model(tmp_path / "src.gguf", "gemma3", 12)
    result = rewrite.build(src, "2-5", tmp_path / "rewritten.gguf")
    wrong = tiny_models.write_model(tmp_path / "wrong.gguf", "gemma3", 12,
                                    layer_path=result.plan.trunk_path, explicit_kinds=False)
    assert not np.allclose(llama_logits(result.out), llama_logits(wrong), atol=1e-3)


def test_duplication_changes_the_logits(tmp_path):
    """Control: a duplicated block really runs (the output is not the original)."""
    src = tiny_models.write_model(tmp_path / "src.gguf", "qwen35", 8)
    out = rewrite.build(src, "2-5", tmp_path / "dup.gguf").out
    assert load(out).n_layer_all == 12
    assert not np.allclose(llama_logits(src), llama_logits(out), atol=1e-3)
