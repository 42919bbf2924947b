"""rys.checkpoint.hf.names and rys.checkpoint.hf.mapping without torch: name tables, metadata along a path, bad input,
GGUF files read as HF tensors one at a time (and every tensor type dequantized).

The numerical proof (llama.cpp vs HF transformers) is test_hf_reference.py.
"""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from rys.core import gguf_file, gguf_tensors
from rys.core.arch import RECURRENT_LAYERS
from rys.core.errors import RysError
from rys.core.gguf_file import write_arrays
from rys.core.gguf_tensors import read_arrays
from rys.checkpoint.hf.mapping import gguf_to_hf, hf_to_gguf, read_hf
from rys.checkpoint.hf.names import attention_interval, hf_layer_kinds, tensor_names
from support.tiny_models import write_raw_types_model

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


# --------------------------------------------------------------------------
# GGUF files -> HF tensors, one at a time


def _write(path, arch="llama", extra=(), **meta_changes):
    cfg = dict(CONFIGS[arch], tie_word_embeddings=False)
    meta, tensors = hf_to_gguf(arch, cfg, _fake_tensors(arch, cfg))
    write_arrays(path, meta | meta_changes, tensors + list(extra))
    return gguf_file.read(path)


@pytest.mark.parametrize("arch", CONFIGS)
def test_read_hf_reads_each_tensor_once_when_reached(arch, tmp_path, monkeypatch):
    gf = _write(tmp_path / "m.gguf", arch)
    reads = []
    monkeypatch.setattr(gguf_tensors, "read_tensor", lambda fh, t: reads.append(t.name) or gguf_file.read_tensor(fh, t))
    hf = read_hf(gf)
    assert reads == []  # config and checks from the header alone
    first = next(hf.arrays)
    assert reads == ["token_embd.weight"] and first[0] == "model.embed_tokens.weight"
    got = dict([first, *hf.arrays])
    assert sorted(reads) == sorted(t.name for t in gf.tensors)  # every tensor once
    cfg, whole = gguf_to_hf(arch, *read_arrays(gf.path))
    assert hf.config == cfg and list(hf.sizes) == list(got) and set(got) == set(whole)
    for name, x in whole.items():
        assert np.array_equal(got[name], x) and hf.sizes[name] == x.size, name


@pytest.mark.parametrize(
    "extra,meta,message",
    [
        ([("rope_freqs.weight", np.ones(2, np.float32))], {}, "no mapping for tensor 'rope_freqs.weight'"),
        ([], {"llama.rope.scaling.type": "linear"}, "rope scaling 'linear' is not supported"),
        ([], {"llama.rope.dimension_count": 2}, "rope on 2 of 4 dimensions"),
    ],
)
def test_read_hf_refuses_before_reading(extra, meta, message, tmp_path):
    gf = _write(tmp_path / "m.gguf", extra=extra, **meta)
    with pytest.raises(RysError, match=message):
        read_hf(gf)


@pytest.mark.filterwarnings("ignore:(invalid value|overflow) encountered:RuntimeWarning")  # random scales
def test_read_tensor_dequantizes_every_type_gguf_py_does(tmp_path, monkeypatch):
    """Random bytes of every ggml type, read two rows per step: what gguf-py
    makes of the whole tensor at once, or RysError where gguf-py cannot."""
    monkeypatch.setattr(gguf_file, "DEQUANT_STEP", 2 * 512 * 4)  # two rows of 512 values
    types = [t.name for t in gguf.GGMLQuantizationType]
    gf = gguf_file.read(write_raw_types_model(tmp_path / "raw.gguf", types, n_layers=1))
    done, refused = set(), set()
    with open(gf.path, "rb") as fh:
        for t in gf.tensors[1:]:
            qtype = gguf.GGMLQuantizationType(t.ggml_type)
            raw = np.fromfile(gf.path, np.uint8, count=t.n_bytes, offset=t.offset).reshape(t.shape[1], -1)
            try:
                want = gguf.quants.dequantize(raw, qtype)
            except NotImplementedError:
                with pytest.raises(RysError, match=f"is {qtype.name}, which gguf-py cannot dequantize"):
                    gguf_file.read_tensor(fh, t)
                refused.add(qtype.name)
                continue
            got = gguf_file.read_tensor(fh, t)
            assert got.dtype == np.float32 and got.shape == (t.shape[1], 512) and t.shape[1] > 2
            np.testing.assert_array_equal(got, want, err_msg=qtype.name)  # NaNs (from random bytes) included
            done.add(qtype.name)
    assert {"F32", "F16", "BF16", "Q4_0", "Q8_0", "Q4_K", "Q6_K", "IQ2_XXS", "IQ4_XS", "TQ1_0", "MXFP4"} <= done
    assert {"I32", "F64"} <= refused and done | refused == set(types)
