"""Tiny GGUF models written with the gguf writer, for tests and benchmarks.

Weights are random, seeded by the *source* layer index, so "layer path
built directly" (write_model(..., layer_path=P)) and "original rewritten by
rys along P" must give llama.cpp exactly the same tensors, and so exactly
the same logits.

Shapes follow llama.cpp's loaders (src/models/{llama,qwen35,gemma3}.cpp);
sizes are in ggml order (ne0 first).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from support.tiny_vocab import N_VOCAB, add_byte_vocab
from rys.core.arch import RECURRENT_LAYERS

NAMES = gguf.TENSOR_NAMES
MT = gguf.MODEL_TENSOR


@dataclass(frozen=True)
class Dims:
    n_embd: int = 64
    n_ff: int = 128
    n_head: int = 4
    n_head_kv: int = 2
    head_dim: int = 16
    # qwen35 Gated DeltaNet
    ssm_d_conv: int = 4
    ssm_d_state: int = 16  # head dim of keys and values
    ssm_n_group: int = 2  # key heads
    ssm_dt_rank: int = 4  # value heads
    # gemma3: a window small enough that SWA and global layers differ on a short prompt
    sliding_window: int = 3


def _name(t: MT, bid: int | None = None, suffix: str = "weight") -> str:
    base = NAMES[t].format(bid=bid) if bid is not None else NAMES[t]
    return f"{base}.{suffix}" if suffix else base


def _attention(d: Dims) -> list[tuple[str, tuple[int, ...], str]]:
    """Norm, Q, K, V and output projection: the attention tensors llama and gemma3 share."""
    qd, kvd = d.n_head * d.head_dim, d.n_head_kv * d.head_dim
    return [
        (_name(MT.ATTN_NORM), (d.n_embd,), "norm"),
        (_name(MT.ATTN_Q), (d.n_embd, qd), "w"),
        (_name(MT.ATTN_K), (d.n_embd, kvd), "w"),
        (_name(MT.ATTN_V), (d.n_embd, kvd), "w"),
        (_name(MT.ATTN_OUT), (qd, d.n_embd), "w"),
    ]


def _llama_layer(d: Dims, kind: str) -> list[tuple[str, tuple[int, ...], str]]:
    return _attention(d) + [
        (_name(MT.FFN_NORM), (d.n_embd,), "norm"),
        (_name(MT.FFN_GATE), (d.n_embd, d.n_ff), "w"),
        (_name(MT.FFN_UP), (d.n_embd, d.n_ff), "w"),
        (_name(MT.FFN_DOWN), (d.n_ff, d.n_embd), "w"),
    ]


def _gemma3_layer(d: Dims, kind: str) -> list[tuple[str, tuple[int, ...], str]]:
    return _attention(d) + [
        (_name(MT.ATTN_POST_NORM), (d.n_embd,), "norm"),
        (_name(MT.ATTN_K_NORM), (d.head_dim,), "norm"),
        (_name(MT.ATTN_Q_NORM), (d.head_dim,), "norm"),
        (_name(MT.FFN_NORM), (d.n_embd,), "norm"),
        (_name(MT.FFN_GATE), (d.n_embd, d.n_ff), "w"),
        (_name(MT.FFN_UP), (d.n_embd, d.n_ff), "w"),
        (_name(MT.FFN_DOWN), (d.n_ff, d.n_embd), "w"),
        (_name(MT.FFN_POST_NORM), (d.n_embd,), "norm"),
    ]


def _qwen35_layer(d: Dims, kind: str) -> list[tuple[str, tuple[int, ...], str]]:
    qd, kvd = d.n_head * d.head_dim, d.n_head_kv * d.head_dim
    key_dim, value_dim = d.ssm_d_state * d.ssm_n_group, d.ssm_d_state * d.ssm_dt_rank
    head = [(_name(MT.ATTN_NORM), (d.n_embd,), "norm"), (_name(MT.ATTN_POST_NORM), (d.n_embd,), "norm")]
    if kind in ("attention", "mtp"):
        mixer = [
            (_name(MT.ATTN_Q), (d.n_embd, qd * 2), "w"),  # query and output gate, interleaved per head
            (_name(MT.ATTN_K), (d.n_embd, kvd), "w"),
            (_name(MT.ATTN_V), (d.n_embd, kvd), "w"),
            (_name(MT.ATTN_OUT), (qd, d.n_embd), "w"),
            (_name(MT.ATTN_Q_NORM), (d.head_dim,), "norm"),
            (_name(MT.ATTN_K_NORM), (d.head_dim,), "norm"),
        ]
    else:
        mixer = [
            (_name(MT.ATTN_QKV), (d.n_embd, key_dim * 2 + value_dim), "w"),
            (_name(MT.ATTN_GATE), (d.n_embd, value_dim), "w"),
            (_name(MT.SSM_CONV1D), (d.ssm_d_conv, key_dim * 2 + value_dim), "w"),
            (_name(MT.SSM_DT, suffix="bias"), (d.ssm_dt_rank,), "small"),
            (_name(MT.SSM_A, suffix=""), (d.ssm_dt_rank,), "neg"),
            (_name(MT.SSM_BETA), (d.n_embd, d.ssm_dt_rank), "w"),
            (_name(MT.SSM_ALPHA), (d.n_embd, d.ssm_dt_rank), "w"),
            (_name(MT.SSM_NORM), (d.ssm_d_state,), "norm"),
            (_name(MT.SSM_OUT), (value_dim, d.n_embd), "w"),
        ]
    ffn = [
        (_name(MT.FFN_GATE), (d.n_embd, d.n_ff), "w"),
        (_name(MT.FFN_DOWN), (d.n_ff, d.n_embd), "w"),
        (_name(MT.FFN_UP), (d.n_embd, d.n_ff), "w"),
    ]
    mtp = []
    if kind == "mtp":
        mtp = [
            (_name(MT.NEXTN_EH_PROJ), (2 * d.n_embd, d.n_embd), "w"),
            (_name(MT.NEXTN_ENORM), (d.n_embd,), "norm"),
            (_name(MT.NEXTN_HNORM), (d.n_embd,), "norm"),
            (_name(MT.NEXTN_SHARED_HEAD_NORM), (d.n_embd,), "norm"),
        ]
    return head + mixer + ffn + mtp


LAYER_TENSORS = {"llama": _llama_layer, "gemma3": _gemma3_layer, "qwen35": _qwen35_layer}


def source_kind(arch: str, i: int, n_trunk: int, period: int) -> str:
    """Kind of original layer i (extra layers, i >= n_trunk, are MTP)."""
    if i >= n_trunk:
        return "mtp"
    if arch == "qwen35":
        return "attention" if (i + 1) % period == 0 else "deltanet"
    if arch == "gemma3":
        return "swa" if i % period < period - 1 else "global"
    return "block"


def _values(rng: np.random.Generator, shape: tuple[int, ...], how: str) -> np.ndarray:
    np_shape = tuple(reversed(shape))
    if how == "norm":
        return (1.0 + 0.1 * rng.standard_normal(np_shape)).astype(np.float32)
    if how == "neg":  # ssm_a = -exp(A_log): negative decay rates
        return (-np.exp(0.5 * rng.standard_normal(np_shape))).astype(np.float32)
    if how == "small":
        return (0.1 * rng.standard_normal(np_shape)).astype(np.float32)
    return (rng.standard_normal(np_shape) / np.sqrt(shape[0])).astype(np.float32)


def write_model(
    path: Path,
    arch: str = "llama",
    n_layers: int = 8,
    n_extra: int = 0,
    layer_path: list[int] | None = None,
    explicit_kinds: bool = False,
    period: int | None = None,
    seed: int = 0,
    dims: Dims = Dims(),
    name: str = "tiny",
) -> Path:
    """Write a tiny f32 model of `arch` whose layer k carries the weights of
    original layer layer_path[k] (default: the identity on n_layers).

    `period` is qwen35's full_attention_interval (default 4) or gemma3's
    sliding-window period (default 6). With explicit_kinds the per-layer
    array (recurrent_layers / sliding_window_pattern) is written as well.
    """
    period = period or {"qwen35": 4, "gemma3": 6}.get(arch, 1)
    trunk = list(layer_path) if layer_path is not None else list(range(n_layers))
    full = trunk + [n_layers + j for j in range(n_extra)]
    kinds = [source_kind(arch, i, n_layers, period) for i in full]
    d = dims
    w = gguf.GGUFWriter(path, arch)
    w.add_name(name)
    w.add_context_length(4096)  # llama-server caps a slot at the training context
    w.add_embedding_length(d.n_embd)
    w.add_block_count(len(full))
    w.add_feed_forward_length(d.n_ff)
    w.add_head_count(d.n_head)
    w.add_head_count_kv(d.n_head_kv)
    w.add_key_length(d.head_dim)
    w.add_value_length(d.head_dim)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    if arch == "llama":
        w.add_rope_dimension_count(d.head_dim)
    if arch == "qwen35":
        w.add_rope_dimension_count(d.head_dim)
        w.add_rope_dimension_sections([d.head_dim // 4, d.head_dim // 8, d.head_dim // 8, 0])
        w.add_ssm_conv_kernel(d.ssm_d_conv)
        w.add_ssm_inner_size(d.ssm_d_state * d.ssm_dt_rank)
        w.add_ssm_state_size(d.ssm_d_state)
        w.add_ssm_time_step_rank(d.ssm_dt_rank)
        w.add_ssm_group_count(d.ssm_n_group)
        w.add_uint32(gguf.Keys.LLM.FULL_ATTENTION_INTERVAL.format(arch=arch), period)
        if n_extra:
            w.add_uint32(gguf.Keys.LLM.NEXTN_PREDICT_LAYERS.format(arch=arch), n_extra)
        if explicit_kinds:
            w.add_array(RECURRENT_LAYERS.format(arch=arch), [k == "deltanet" for k in kinds])
    if arch == "gemma3":
        w.add_sliding_window(d.sliding_window)
        w.add_rope_freq_base_swa(1000.0)
        if explicit_kinds:
            w.add_array(gguf.Keys.Attention.SLIDING_WINDOW_PATTERN.format(arch=arch), [k == "swa" for k in kinds])
        else:
            w.add_uint32(gguf.Keys.Attention.SLIDING_WINDOW_PATTERN.format(arch=arch), period)
    add_byte_vocab(w)

    rng = np.random.default_rng([seed, 1_000_000])
    w.add_tensor(_name(MT.TOKEN_EMBD), _values(rng, (d.n_embd, N_VOCAB), "w") * 4)
    for k, (src, kind) in enumerate(zip(full, kinds)):
        for j, (tname, shape, how) in enumerate(LAYER_TENSORS[arch](d, kind)):
            layer_rng = np.random.default_rng([seed, src, j])  # depends on the source layer only
            w.add_tensor(tname.format(bid=k), _values(layer_rng, shape, how))
    rng = np.random.default_rng([seed, 2_000_000])
    w.add_tensor(_name(MT.OUTPUT_NORM), _values(rng, (d.n_embd,), "norm"))
    w.add_tensor(_name(MT.OUTPUT), _values(rng, (d.n_embd, N_VOCAB), "w"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_raw_types_model(path: Path, types: list[str], n_layers: int = 6, alignment: int = 64, seed: int = 0) -> Path:
    """A llama-shaped file whose layer tensors hold random bytes of the given
    ggml types (K-quants, IQ-quants, BF16, ...): for checking that a rewrite
    copies bytes verbatim, not for running."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_custom_alignment(alignment)
    w.add_block_count(n_layers)
    w.add_embedding_length(256)
    w.add_array("llama.test.per_layer", [100 + i for i in range(n_layers)])
    rng = np.random.default_rng(seed)
    w.add_tensor("token_embd.weight", rng.standard_normal((4, 256)).astype(np.float32))
    for i in range(n_layers):
        for j, tname in enumerate(types):
            qtype = gguf.GGMLQuantizationType[tname]
            block, type_size = gguf.GGML_QUANT_SIZES[qtype]
            ne0 = 256 * 2  # a multiple of every block size
            rows = 3 + j
            raw = np.random.default_rng([seed, i, j]).integers(0, 256, size=(rows, ne0 // block * type_size), dtype=np.uint8)
            w.add_tensor(f"blk.{i}.t{j}_{tname.lower()}.weight", raw, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
