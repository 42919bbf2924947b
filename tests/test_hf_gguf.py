"""rys.hf_names and rys.hf_convert without torch: name tables, metadata along a path, bad input.

The numerical proof (llama.cpp vs HF transformers) is test_hf_reference.py.
"""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from rys.arch import RECURRENT_LAYERS
from rys.errors import RysError
from rys.hf_convert import gguf_to_hf, hf_to_gguf
from rys.hf_names import attention_interval, hf_layer_kinds, tensor_names

LLAMA = dict(
    vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=4,
    num_attention_heads=2, num_key_value_heads=1, head_dim=4, rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
)
QWEN35 = dict(
    LLAMA, num_hidden_layers=8, tie_word_embeddings=True, linear_conv_kernel_dim=4,
    linear_key_head_dim=4, linear_value_head_dim=4, linear_num_key_heads=1, linear_num_value_heads=2,
    layer_types=["linear_attention"] * 3 + ["full_attention"] + ["linear_attention"] * 3 + ["full_attention"],
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
                     "mrope_section": [1, 0, 0]},
)
CONFIGS = {"llama": LLAMA, "qwen35": QWEN35}

# HF names llama.cpp's converter renames before its table lookup.
CONVERTER_RENAMES = {".linear_attn.dt_bias": ".linear_attn.dt_proj.bias"}


@pytest.mark.parametrize("arch", CONFIGS)
def test_names_agree_with_gguf_py_table(arch):
    """Every (HF, GGUF) name pair is what gguf-py's TensorNameMap says."""
    cfg = dict(CONFIGS[arch], tie_word_embeddings=False)
    table = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], cfg["num_hidden_layers"])
    for hf_name, gguf_name in tensor_names(arch, cfg):
        lookup = hf_name
        for old, new in CONVERTER_RENAMES.items():
            lookup = lookup.replace(old, new)
        assert table.get_name(lookup, try_suffixes=(".weight", ".bias")) == gguf_name, hf_name


def test_names_follow_the_path():
    names = tensor_names("qwen35", QWEN35, layer_path=[0, 3, 3])
    blocks = [(h, g) for h, g in names if g.startswith("blk.")]
    assert ("model.layers.0.linear_attn.A_log", "blk.0.ssm_a") in blocks
    assert ("model.layers.3.self_attn.q_proj.weight", "blk.1.attn_q.weight") in blocks
    assert ("model.layers.3.self_attn.q_proj.weight", "blk.2.attn_q.weight") in blocks
    assert not any(g.startswith("blk.3.") for _, g in blocks)


def _fake_tensors(arch, cfg):
    """Arrays of the right shapes for every HF tensor (shapes from the config)."""
    h, nh, nkv, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    ff, v = cfg["intermediate_size"], cfg["vocab_size"]
    rng = np.random.default_rng(0)
    shapes = {
        "embed_tokens.weight": (v, h), "model.norm.weight": (h,), "lm_head.weight": (v, h),
        "layernorm.weight": (h,), "k_proj.weight": (nkv * hd, h), "v_proj.weight": (nkv * hd, h),
        "o_proj.weight": (h, nh * hd), "q_norm.weight": (hd,), "k_norm.weight": (hd,),
        "gate_proj.weight": (ff, h), "up_proj.weight": (ff, h), "down_proj.weight": (h, ff),
        "q_proj.weight": (nh * hd * (2 if arch == "qwen35" else 1), h),
    }
    if arch == "qwen35":
        kh, vh, d = cfg["linear_num_key_heads"], cfg["linear_num_value_heads"], cfg["linear_key_head_dim"]
        conv = 2 * kh * d + vh * d
        shapes |= {
            "in_proj_qkv.weight": (conv, h), "in_proj_z.weight": (vh * d, h), "in_proj_a.weight": (vh, h),
            "in_proj_b.weight": (vh, h), "A_log": (vh,), "dt_bias": (vh,), "conv1d.weight": (conv, 1, 4),
            "linear_attn.norm.weight": (d,), "out_proj.weight": (h, vh * d),
        }
    out = {}
    for hf_name, _ in tensor_names(arch, cfg, tied=False):
        shape = next(s for suffix, s in sorted(shapes.items(), key=lambda kv: -len(kv[0])) if hf_name.endswith(suffix))
        out[hf_name] = rng.standard_normal(shape).astype(np.float32)
    return out


@pytest.mark.parametrize("arch", CONFIGS)
def test_round_trip_without_torch(arch):
    cfg = dict(CONFIGS[arch], tie_word_embeddings=False)
    x = _fake_tensors(arch, cfg)
    meta, tensors = hf_to_gguf(arch, cfg, x)
    cfg_back, back = gguf_to_hf(arch, meta, dict(tensors))
    assert set(back) == set(x)
    for name in x:
        np.testing.assert_allclose(back[name], x[name], rtol=2**-22, atol=2**-23, err_msg=name)
    assert hf_layer_kinds(arch, cfg_back) == hf_layer_kinds(arch, cfg)


def test_qwen35_metadata_follows_the_path():
    x = _fake_tensors("qwen35", QWEN35)
    key = RECURRENT_LAYERS.format(arch="qwen35")
    # a 4-layer block keeps period 4: both keys, agreeing
    meta, _ = hf_to_gguf("qwen35", QWEN35, x, layer_path=[0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7])
    assert meta["qwen35.block_count"] == 12
    assert meta[key] == [(i + 1) % 4 != 0 for i in range(12)]
    assert meta["qwen35.full_attention_interval"] == 4
    # a 3-layer block has no period: the array alone (a scalar would contradict it)
    meta, _ = hf_to_gguf("qwen35", QWEN35, x, layer_path=[0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7])
    assert meta[key] == [True, True, True, False, True, True, False, True, True, True, False]
    assert "qwen35.full_attention_interval" not in meta


def test_attention_interval():
    a, d = "attention", "deltanet"
    assert attention_interval([d, d, d, a] * 2) == 4
    assert attention_interval([a, a]) == 1
    assert attention_interval([d, d, a, d]) == 3  # layer 5 would be attention: no such layer
    assert attention_interval([d, d, d]) == 4
    assert attention_interval([d, a, a, d]) is None


def _cfg(arch, **changes):
    return dict(CONFIGS[arch], **changes)


@pytest.mark.parametrize(
    "arch,cfg,tensors,layer_path,message",
    [
        ("gpt2", LLAMA, {}, None, "no HF mapping"),
        ("llama", LLAMA, {}, [0, 4], "layer 4 in the path"),
        ("llama", LLAMA, {}, [], "path is empty"),
        ("llama", _cfg("llama", hidden_act="gelu"), {}, None, "hidden_act"),
        ("llama", _cfg("llama", rope_parameters={"rope_type": "yarn", "factor": 2.0}), {}, None, "rope_type 'yarn'"),
        ("qwen35", _cfg("qwen35", linear_value_head_dim=8), {}, None, "linear_key_head_dim == linear_value_head_dim"),
        ("qwen35", _cfg("qwen35", linear_num_key_heads=3, linear_num_value_heads=4), {}, None, "not a multiple"),
        ("qwen35", _cfg("qwen35", layer_types=["mamba"] * 8), {}, None, "unknown Qwen3.5 layer type"),
        ("llama", LLAMA, {}, None, "is missing"),
        ("llama", LLAMA, {"model.layers.0.self_attn.q_proj.bias": np.zeros(8, np.float32)}, None, "no mapping"),
    ],
)
def test_bad_input_raises_rys_error(arch, cfg, tensors, layer_path, message):
    with pytest.raises(RysError, match=message):
        hf_to_gguf(arch, cfg, tensors, layer_path=layer_path)


def test_gguf_to_hf_refuses_quantized_data():
    meta, tensors = hf_to_gguf("llama", _cfg("llama", tie_word_embeddings=False), _fake_tensors("llama", LLAMA))
    tensors = dict(tensors)
    tensors["blk.0.attn_q.weight"] = np.zeros(18, np.uint8)
    with pytest.raises(RysError, match="not f32/f16"):
        gguf_to_hf("llama", meta, tensors)
