"""llama.cpp computes exactly the layer path: logits of a rewritten file equal
the logits of the same path built directly by the fixture builder."""

import gguf
import numpy as np
import pytest

from support import tiny_models
from support.llama_ref import llama_logits
from rys.surgery import rewrite
from rys.core.model import load

# The per-layer kinds array each rewrite must write, worked out by hand from the
# path (qwen35: D Gated DeltaNet, A full attention, M MTP; gemma3: S sliding
# window, G global), or None where the path keeps every layer's kind under the
# source's scalar and only the scalar may be there. llama has neither.
CASES = [
    # arch, n_layers, n_extra, spec, kinds of the written layers
    ("llama", 8, 0, "2-4", None),
    ("llama", 8, 0, "1-2,5-6", None),
    ("llama", 8, 0, "path:0-2,5-7", None),  # deletion
    ("llama", 8, 0, "path:7-0", None),  # reversal
    ("qwen35", 8, 0, "2-5", None),  # 0-5 2-5 6-7: a multiple of the interval, the scalar is kept
    ("qwen35", 8, 0, "2-4", "DDDAD DAD DDA"),  # 0-4 2-4 5-7: 3 layers need qwen35.attention.recurrent_layers
    ("qwen35", 8, 0, "0-1,4-6", "DD DD DADDD DDD A"),  # 0-1 0-1 2-6 4-6 7
    ("qwen35", 8, 0, "path:0-3,6-7", "DDDA DA"),
    ("qwen35", 8, 1, "4-7", None),  # with an MTP layer after the trunk
    ("qwen35", 12, 1, "5-7", "DDDADDDA DDA DDDA M"),  # 0-7 5-7 8-11, MTP
    ("gemma3", 12, 0, "0-5", None),  # a whole period: the scalar is kept
    ("gemma3", 12, 0, "2-5", "SSSSSG SSSG SSSSSG"),  # 4 layers: needs the sliding_window_pattern array
]

# arch -> (key of the per-layer array, the letter its True stands for, key of the scalar, the scalar)
KIND_KEYS = {"qwen35": ("qwen35.attention.recurrent_layers", "D", "qwen35.full_attention_interval", 4),
             "gemma3": ("gemma3.attention.sliding_window_pattern", "S", "gemma3.attention.sliding_window_pattern", 6)}


def kind_fields(path) -> dict:
    """Every kinds key (array or scalar) the file holds, read with gguf's own reader."""
    fields = gguf.GGUFReader(path).fields
    keys = {k for arch_keys in KIND_KEYS.values() for k in (arch_keys[0], arch_keys[2])}
    return {k: fields[k].contents() for k in keys if k in fields}


@pytest.mark.parametrize("arch,n,extra,spec,kinds", CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_rewrite_equals_direct_build(arch, n, extra, spec, kinds, tmp_path):
    src = tiny_models.write_model(tmp_path / "src.gguf", arch, n, n_extra=extra)
    result = rewrite.build(src, spec, tmp_path / "rewritten.gguf")
    written = kind_fields(result.out)
    if arch not in KIND_KEYS:
        assert written == {}
    elif kinds is None:
        _, _, scalar_key, scalar = KIND_KEYS[arch]
        assert written == {scalar_key: scalar}
    else:
        array_key, true_kind, scalar_key, scalar = KIND_KEYS[arch]
        flags = [k == true_kind for k in kinds.replace(" ", "")]
        assert written == ({array_key: flags} if array_key == scalar_key else {array_key: flags, scalar_key: scalar})
        assert len(flags) == load(result.out).n_layer_all
    direct = tiny_models.write_model(tmp_path / "direct.gguf", arch, n, n_extra=extra,
                                     layer_path=result.plan.trunk_path, explicit_kinds=kinds is not None)
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
