"""Mapping between Hugging Face checkpoints and GGUF tensors.

Two architectures, as llama.cpp reads them:

- ``llama`` (``LlamaForCausalLM``): llama.cpp rotates adjacent pairs of
  query/key dimensions (GGML rope "normal" mode) where HF rotates the two
  halves of each head, so the rows of ``q_proj``/``k_proj`` are permuted
  within each head.
- ``qwen35`` (``Qwen3_5ForCausalLM``, a hybrid of Gated DeltaNet and gated
  full attention): ``A_log`` is stored as ``ssm_a = -exp(A_log)``,
  ``dt_bias`` becomes ``ssm_dt.bias``, the depthwise ``conv1d`` kernel loses
  its singleton axis, every zero-centred RMSNorm weight ``w`` (HF computes
  ``x * (1 + w)``) is stored as ``1 + w`` except the gated ``linear_attn.norm``
  (HF computes ``x * w`` there), and when a DeltaNet layer has more value
  heads than key heads the value heads are reordered from HF's grouped order
  (all value heads of key head 0, then of key head 1, ...) to the tiled order
  ggml's broadcasting expects (value head 0 of every key head, then value
  head 1, ...). The full-attention ``q_proj`` (query and output gate
  interleaved per head) is kept as it is: llama.cpp splits it the same way.

Everything here is numpy: the torch pruning path feeds ``state_dict`` arrays
converted with ``.numpy()``. Arrays are in numpy/PyTorch axis order (a linear
weight is ``[out_features, in_features]``); the GGUF writer reverses the axes
into ggml's ``ne`` order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import gguf
import numpy as np

from rys.errors import RysError

# Per-layer "is this a recurrent layer" flags. Current llama.cpp reads this
# array before `full_attention_interval`; the PyPI gguf 0.19.0 Keys table
# does not have it yet, so it is defined here, once.
RECURRENT_LAYERS_KEY = getattr(gguf.Keys.Attention, "RECURRENT_LAYERS", "{arch}.attention.recurrent_layers")

ARCHITECTURES = ("llama", "qwen35")

# Layer kinds, as llama.cpp types them.
ATTENTION = "attention"
DELTANET = "deltanet"

# HF's names for the Qwen3.5 layer kinds (config.layer_types).
_HF_LAYER_TYPES = {DELTANET: "linear_attention", ATTENTION: "full_attention"}

# Qwen3.5 rotary sections (time, height, width) when the config has none;
# llama.cpp requires the key, padded to 4 entries.
_DEFAULT_MROPE_SECTION = [11, 11, 10]

Metadata = dict[str, object]
TensorList = list[tuple[str, np.ndarray]]


# --------------------------------------------------------------------------
# Sizes read from the HF config


@dataclass(frozen=True)
class Dims:
    """The sizes the tensor transforms need."""

    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    # Gated DeltaNet (qwen35 only; 0 elsewhere)
    lin_k_heads: int = 0
    lin_v_heads: int = 0
    lin_head_dim: int = 0

    @property
    def v_per_k(self) -> int:
        """Value heads per key head in a DeltaNet layer."""
        return self.lin_v_heads // self.lin_k_heads


def _dims(arch: str, cfg: Mapping) -> Dims:
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise RysError(f"{arch}: llama.cpp computes a SiLU MLP, the HF config says hidden_act '{act}'")
    n_head = _need(cfg, "num_attention_heads")
    n_embd = _need(cfg, "hidden_size")
    head_dim = cfg.get("head_dim") or n_embd // n_head
    base = dict(
        n_layer=_need(cfg, "num_hidden_layers"),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=cfg.get("num_key_value_heads") or n_head,
        head_dim=head_dim,
    )
    if arch == "llama":
        return Dims(**base)
    k_dim, v_dim = _need(cfg, "linear_key_head_dim"), _need(cfg, "linear_value_head_dim")
    if k_dim != v_dim:
        raise RysError(f"qwen35: llama.cpp needs linear_key_head_dim == linear_value_head_dim ({k_dim} != {v_dim})")
    k_heads, v_heads = _need(cfg, "linear_num_key_heads"), _need(cfg, "linear_num_value_heads")
    if v_heads % k_heads:
        raise RysError(f"qwen35: linear_num_value_heads ({v_heads}) is not a multiple of "
                       f"linear_num_key_heads ({k_heads})")
    return Dims(**base, lin_k_heads=k_heads, lin_v_heads=v_heads, lin_head_dim=k_dim)


def _need(cfg: Mapping, key: str):
    if cfg.get(key) is None:
        raise RysError(f"the HF config has no '{key}'")
    return cfg[key]


def _rope_params(cfg: Mapping) -> dict:
    """rope_parameters (transformers >= 5), falling back to the old flat keys."""
    params = dict(cfg.get("rope_parameters") or {})
    for key in ("rope_theta", "partial_rotary_factor"):
        if key not in params and cfg.get(key) is not None:
            params[key] = cfg[key]
    if cfg.get("rope_scaling"):
        params.setdefault("rope_type", cfg["rope_scaling"].get("rope_type", cfg["rope_scaling"].get("type")))
    rope_type = params.get("rope_type") or "default"
    if rope_type != "default":
        raise RysError(f"rope_type '{rope_type}' is not supported yet (only 'default')")
    return params


# --------------------------------------------------------------------------
# Tensor transforms. Each takes and returns a numpy array; `d` gives sizes.


def _swap_groups(x: np.ndarray, axis: int, outer: int, inner: int, size: int) -> np.ndarray:
    """Split `axis` into (outer, inner, size) blocks and swap the first two.

    With outer=K key heads, inner=R value heads per key head, size=head dim,
    this turns grouped order [k0v0 k0v1 .. k1v0 ..] into tiled order
    [k0v0 k1v0 .. k0v1 ..]; swap_groups(R, K, size) undoes it.
    """
    axis = axis % x.ndim
    shape = x.shape
    if shape[axis] != outer * inner * size:
        raise RysError(f"cannot split an axis of {shape[axis]} into {outer} x {inner} x {size}")
    split = x.reshape(shape[:axis] + (outer, inner, size) + shape[axis + 1 :])
    return np.swapaxes(split, axis, axis + 1).reshape(shape)


def _identity(x: np.ndarray, d: Dims) -> np.ndarray:
    return x


def _plus_one(x: np.ndarray, d: Dims) -> np.ndarray:
    return (x.astype(np.float32) + 1.0).astype(x.dtype)


def _minus_one(x: np.ndarray, d: Dims) -> np.ndarray:
    return (x.astype(np.float32) - 1.0).astype(x.dtype)


# llama: within each head, HF rotates dimension i with i + head_dim/2 (the
# two halves), ggml's normal rope rotates 2i with 2i+1 (adjacent pairs). So
# the rows of q_proj/k_proj [n_heads*head_dim, n_embd] go, per head, from
# (2, head_dim/2) order to (head_dim/2, 2) order.
def _rope_perm(x: np.ndarray, n_heads: int, to_gguf: bool) -> np.ndarray:
    heads = x.reshape((n_heads, -1) + x.shape[1:])  # [head, head_dim, n_embd]
    half = heads.shape[1] // 2
    outer, inner = (2, half) if to_gguf else (half, 2)
    return _swap_groups(heads, 1, outer, inner, 1).reshape(x.shape)


def _q_to_gguf(x: np.ndarray, d: Dims) -> np.ndarray:
    return _rope_perm(x, d.n_head, to_gguf=True)


def _q_to_hf(x: np.ndarray, d: Dims) -> np.ndarray:
    return _rope_perm(x, d.n_head, to_gguf=False)


def _k_to_gguf(x: np.ndarray, d: Dims) -> np.ndarray:
    return _rope_perm(x, d.n_head_kv, to_gguf=True)


def _k_to_hf(x: np.ndarray, d: Dims) -> np.ndarray:
    return _rope_perm(x, d.n_head_kv, to_gguf=False)


# qwen35 DeltaNet: value heads grouped by key head (HF) <-> tiled (ggml).
def _v_tiled(x: np.ndarray, d: Dims, axis: int, size: int) -> np.ndarray:
    return _swap_groups(x, axis, d.lin_k_heads, d.v_per_k, size)


def _v_grouped(x: np.ndarray, d: Dims, axis: int, size: int) -> np.ndarray:
    return _swap_groups(x, axis, d.v_per_k, d.lin_k_heads, size)


def _qk_channels(d: Dims) -> int:
    """Channels of q and k at the front of the qkv projection and conv."""
    return 2 * d.lin_k_heads * d.lin_head_dim


def _qkv_rows(reorder):
    """Reorder only the value rows of [q; k; v] (in_proj_qkv, conv1d)."""

    def f(x: np.ndarray, d: Dims) -> np.ndarray:
        qk = _qk_channels(d)
        v = reorder(x[qk:], d, 0, d.lin_head_dim)
        return np.concatenate([x[:qk], v], axis=0)

    return f


def _conv_to_gguf(x: np.ndarray, d: Dims) -> np.ndarray:
    # HF depthwise Conv1d weight [channels, 1, kernel] -> [channels, kernel]
    return _qkv_rows(_v_tiled)(x.reshape(x.shape[0], x.shape[-1]), d)


def _conv_to_hf(x: np.ndarray, d: Dims) -> np.ndarray:
    return _qkv_rows(_v_grouped)(x, d)[:, None, :]


def _a_to_gguf(x: np.ndarray, d: Dims) -> np.ndarray:
    # A_log [v_heads] -> ssm_a = -exp(A_log), the per-head decay rate
    a = -np.exp(x.astype(np.float32))
    return _v_tiled(a, d, 0, 1).astype(x.dtype)


def _a_to_hf(x: np.ndarray, d: Dims) -> np.ndarray:
    a = np.log(-_v_grouped(x, d, 0, 1).astype(np.float32))
    return a.astype(x.dtype)


def _heads(reorder, axis: int, per_head: Callable[[Dims], int]):
    """Reorder value heads along `axis`, each head spanning per_head(d) entries."""

    def f(x: np.ndarray, d: Dims) -> np.ndarray:
        return reorder(x, d, axis, per_head(d))

    return f


def _head_dim_v(d: Dims) -> int:
    return d.lin_head_dim


def _one(d: Dims) -> int:
    return 1


# --------------------------------------------------------------------------
# Name tables: architecture facts as data.


@dataclass(frozen=True)
class Rule:
    """One HF tensor <-> one GGUF tensor.

    hf: the HF name, with "{bid}" for the layer index in block tensors.
    tensor, suffix: the GGUF name is TENSOR_NAMES[tensor] + suffix.
    """

    hf: str
    tensor: gguf.MODEL_TENSOR
    suffix: str = ".weight"
    to_gguf: Callable[[np.ndarray, Dims], np.ndarray] = _identity
    to_hf: Callable[[np.ndarray, Dims], np.ndarray] = _identity

    def hf_name(self, bid: int | None = None) -> str:
        return self.hf.format(bid=bid)

    def gguf_name(self, bid: int | None = None) -> str:
        return gguf.TENSOR_NAMES[self.tensor].format(bid=bid) + self.suffix


T = gguf.MODEL_TENSOR
_PLUS_ONE = dict(to_gguf=_plus_one, to_hf=_minus_one)
_L = "model.layers.{bid}."

_GLOBAL = {
    "llama": [
        Rule("model.embed_tokens.weight", T.TOKEN_EMBD),
        Rule("model.norm.weight", T.OUTPUT_NORM),
    ],
    "qwen35": [
        Rule("model.embed_tokens.weight", T.TOKEN_EMBD),
        Rule("model.norm.weight", T.OUTPUT_NORM, **_PLUS_ONE),
    ],
}
_LM_HEAD = Rule("lm_head.weight", T.OUTPUT)

_MLP = [
    Rule(_L + "mlp.gate_proj.weight", T.FFN_GATE),
    Rule(_L + "mlp.up_proj.weight", T.FFN_UP),
    Rule(_L + "mlp.down_proj.weight", T.FFN_DOWN),
]

_LLAMA_BLOCK = [
    Rule(_L + "input_layernorm.weight", T.ATTN_NORM),
    Rule(_L + "self_attn.q_proj.weight", T.ATTN_Q, to_gguf=_q_to_gguf, to_hf=_q_to_hf),
    Rule(_L + "self_attn.k_proj.weight", T.ATTN_K, to_gguf=_k_to_gguf, to_hf=_k_to_hf),
    Rule(_L + "self_attn.v_proj.weight", T.ATTN_V),
    Rule(_L + "self_attn.o_proj.weight", T.ATTN_OUT),
    Rule(_L + "post_attention_layernorm.weight", T.FFN_NORM),
    *_MLP,
]

_QWEN35_COMMON = [
    Rule(_L + "input_layernorm.weight", T.ATTN_NORM, **_PLUS_ONE),
    Rule(_L + "post_attention_layernorm.weight", T.ATTN_POST_NORM, **_PLUS_ONE),
    *_MLP,
]

_QWEN35_ATTENTION = [
    # q_proj rows: per head, head_dim query rows then head_dim gate rows;
    # llama.cpp views it the same way, so it is copied as it is.
    Rule(_L + "self_attn.q_proj.weight", T.ATTN_Q),
    Rule(_L + "self_attn.k_proj.weight", T.ATTN_K),
    Rule(_L + "self_attn.v_proj.weight", T.ATTN_V),
    Rule(_L + "self_attn.o_proj.weight", T.ATTN_OUT),
    Rule(_L + "self_attn.q_norm.weight", T.ATTN_Q_NORM, **_PLUS_ONE),
    Rule(_L + "self_attn.k_norm.weight", T.ATTN_K_NORM, **_PLUS_ONE),
]

_LA = _L + "linear_attn."
_QWEN35_DELTANET = [
    # [q; k; v] projection [2*K*dk + V*dv, n_embd]: value rows reordered
    Rule(_LA + "in_proj_qkv.weight", T.ATTN_QKV, to_gguf=_qkv_rows(_v_tiled), to_hf=_qkv_rows(_v_grouped)),
    # output gate z [V*dv, n_embd]
    Rule(_LA + "in_proj_z.weight", T.ATTN_GATE,
         to_gguf=_heads(_v_tiled, 0, _head_dim_v), to_hf=_heads(_v_grouped, 0, _head_dim_v)),
    # beta and alpha (decay input) projections [V, n_embd]: one row per value head
    Rule(_LA + "in_proj_b.weight", T.SSM_BETA, to_gguf=_heads(_v_tiled, 0, _one), to_hf=_heads(_v_grouped, 0, _one)),
    Rule(_LA + "in_proj_a.weight", T.SSM_ALPHA, to_gguf=_heads(_v_tiled, 0, _one), to_hf=_heads(_v_grouped, 0, _one)),
    Rule(_LA + "A_log", T.SSM_A, suffix="", to_gguf=_a_to_gguf, to_hf=_a_to_hf),
    Rule(_LA + "dt_bias", T.SSM_DT, suffix=".bias",
         to_gguf=_heads(_v_tiled, 0, _one), to_hf=_heads(_v_grouped, 0, _one)),
    # depthwise causal conv over [q; k; v] channels: [C, 1, kernel] <-> [C, kernel]
    Rule(_LA + "conv1d.weight", T.SSM_CONV1D, to_gguf=_conv_to_gguf, to_hf=_conv_to_hf),
    # gated RMSNorm over one head [dv]: plain weight (HF computes x * w), shared by heads
    Rule(_LA + "norm.weight", T.SSM_NORM),
    # output projection [n_embd, V*dv]: input columns reordered
    Rule(_LA + "out_proj.weight", T.SSM_OUT,
         to_gguf=_heads(_v_tiled, 1, _head_dim_v), to_hf=_heads(_v_grouped, 1, _head_dim_v)),
]


def _block_rules(arch: str, kind: str) -> list[Rule]:
    if arch == "llama":
        return _LLAMA_BLOCK
    mixer = _QWEN35_ATTENTION if kind == ATTENTION else _QWEN35_DELTANET
    return _QWEN35_COMMON + mixer


def _check_arch(arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise RysError(f"architecture '{arch}' has no HF mapping (known: {', '.join(ARCHITECTURES)})")


# --------------------------------------------------------------------------
# Layer kinds and paths


def hf_layer_kinds(arch: str, cfg: Mapping) -> list[str]:
    """The kind of each HF layer: ATTENTION or DELTANET."""
    n_layer = _need(cfg, "num_hidden_layers")
    if arch == "llama":
        return [ATTENTION] * n_layer
    types = cfg.get("layer_types")
    if types is None:
        interval = cfg.get("full_attention_interval") or 4
        return [ATTENTION if (i + 1) % interval == 0 else DELTANET for i in range(n_layer)]
    if len(types) != n_layer:
        raise RysError(f"layer_types has {len(types)} entries for {n_layer} layers")
    by_hf = {v: k for k, v in _HF_LAYER_TYPES.items()}
    unknown = sorted(set(types) - set(by_hf))
    if unknown:
        raise RysError(f"unknown Qwen3.5 layer type '{unknown[0]}'")
    return [by_hf[t] for t in types]


def check_path(path: Sequence[int] | None, n_layer: int) -> list[int]:
    """The layer path as a list of source indices (None means identity)."""
    if path is None:
        return list(range(n_layer))
    path = list(path)
    if not path:
        raise RysError("the layer path is empty")
    bad = [i for i in path if not isinstance(i, (int, np.integer)) or not 0 <= i < n_layer]
    if bad:
        raise RysError(f"layer {bad[0]!r} in the path is not a layer of this {n_layer}-layer model")
    return [int(i) for i in path]


def attention_interval(kinds: Sequence[str]) -> int | None:
    """The period p with "attention iff (i+1) % p == 0" for every layer, if any.

    This is how llama.cpp types qwen35 layers from the scalar
    `full_attention_interval` when the per-layer array is absent. A path
    with no attention layer at all has period len(kinds) + 1.
    """
    for p in range(1, len(kinds) + 2):
        if all((kinds[i] == ATTENTION) == ((i + 1) % p == 0) for i in range(len(kinds))):
            return p
    return None


# --------------------------------------------------------------------------
# HF -> GGUF


def hf_to_gguf(
    arch: str,
    hf_config: Mapping,
    tensors: Mapping[str, np.ndarray],
    layer_path: Sequence[int] | None = None,
) -> tuple[Metadata, TensorList]:
    """Convert an HF state dict (numpy arrays) to GGUF metadata and tensors.

    GGUF layer k is HF layer layer_path[k] (default: the identity path);
    every per-layer key follows the path. The metadata holds the model keys
    only: the caller adds a tokenizer (see write_gguf).
    """
    _check_arch(arch)
    d = _dims(arch, hf_config)
    _rope_params(hf_config)  # refuse an unsupported rope before anything else
    kinds = hf_layer_kinds(arch, hf_config)
    path = check_path(layer_path, d.n_layer)
    tied = bool(hf_config.get("tie_word_embeddings", False))  # no lm_head: output = embedding
    _check_names(set(tensors), _expected_hf_names(arch, kinds, tied), "HF checkpoint")

    out = [
        (rule.gguf_name(new), rule.to_gguf(np.asarray(tensors[rule.hf_name(src)]), d))
        for rule, src, new in _plan(arch, kinds, tied, path)
    ]
    n_vocab = np.shape(tensors["model.embed_tokens.weight"])[0]
    meta = _metadata(arch, hf_config, d, [kinds[i] for i in path], n_vocab)
    return meta, out


def tensor_names(
    arch: str, hf_config: Mapping, layer_path: Sequence[int] | None = None, tied: bool | None = None
) -> list[tuple[str, str]]:
    """(HF name, GGUF name) of every tensor, in the order hf_to_gguf writes them.

    tied defaults to the config's tie_word_embeddings (no lm_head -> output).
    """
    _check_arch(arch)
    kinds = hf_layer_kinds(arch, hf_config)
    path = check_path(layer_path, len(kinds))
    if tied is None:
        tied = bool(hf_config.get("tie_word_embeddings", False))
    return [(r.hf_name(src), r.gguf_name(new)) for r, src, new in _plan(arch, kinds, tied, path)]


def _plan(arch: str, kinds: Sequence[str], tied: bool, path: Sequence[int]):
    """(rule, HF layer, GGUF layer) for every output tensor; None for globals."""
    for rule in _global_rules(arch, tied):
        yield rule, None, None
    for new, src in enumerate(path):
        for rule in _block_rules(arch, kinds[src]):
            yield rule, src, new


def _global_rules(arch: str, tied: bool) -> list[Rule]:
    return _GLOBAL[arch] + ([] if tied else [_LM_HEAD])


def _expected_hf_names(arch: str, kinds: Sequence[str], tied: bool) -> set[str]:
    names = {r.hf_name() for r in _global_rules(arch, tied)}
    for bid, kind in enumerate(kinds):
        names |= {r.hf_name(bid) for r in _block_rules(arch, kind)}
    return names


def _check_names(have: set[str], expected: set[str], what: str) -> None:
    # A tied checkpoint may still list lm_head.weight (same array): allowed.
    unknown = sorted(have - expected - {"lm_head.weight"})
    if unknown:
        raise RysError(f"{what}: no mapping for tensor '{unknown[0]}' ({len(unknown)} unmapped)")
    missing = sorted(expected - have)
    if missing:
        raise RysError(f"{what}: tensor '{missing[0]}' is missing ({len(missing)} missing)")


def _key(template: str, arch: str) -> str:
    return template.format(arch=arch)


def _metadata(arch: str, cfg: Mapping, d: Dims, kinds: Sequence[str], n_vocab: int) -> Metadata:
    """GGUF keys for the model (kinds: one per GGUF layer, along the path)."""
    K = gguf.Keys
    rope = _rope_params(cfg)
    meta: Metadata = {
        K.General.ARCHITECTURE: arch,
        K.General.FILE_TYPE: int(gguf.LlamaFileType.ALL_F32),
        K.LLM.VOCAB_SIZE: n_vocab,
        K.LLM.CONTEXT_LENGTH: int(cfg.get("max_position_embeddings") or 4096),
        K.LLM.EMBEDDING_LENGTH: d.n_embd,
        K.LLM.FEED_FORWARD_LENGTH: _need(cfg, "intermediate_size"),
        K.LLM.BLOCK_COUNT: len(kinds),
        K.Attention.HEAD_COUNT: d.n_head,
        K.Attention.HEAD_COUNT_KV: d.n_head_kv,
        K.Attention.KEY_LENGTH: d.head_dim,
        K.Attention.VALUE_LENGTH: d.head_dim,
        K.Attention.LAYERNORM_RMS_EPS: float(cfg.get("rms_norm_eps") or 1e-6),
        K.Rope.FREQ_BASE: float(rope.get("rope_theta", 10000.0)),
        K.Rope.DIMENSION_COUNT: int(d.head_dim * rope.get("partial_rotary_factor", 1.0)),
    }
    if arch == "qwen35":
        sections = list(rope.get("mrope_section") or _DEFAULT_MROPE_SECTION)
        meta |= {
            K.Rope.DIMENSION_SECTIONS: (sections + [0, 0, 0, 0])[:4],
            K.SSM.CONV_KERNEL: _need(cfg, "linear_conv_kernel_dim"),
            K.SSM.STATE_SIZE: d.lin_head_dim,
            K.SSM.GROUP_COUNT: d.lin_k_heads,
            K.SSM.TIME_STEP_RANK: d.lin_v_heads,
            K.SSM.INNER_SIZE: d.lin_head_dim * d.lin_v_heads,
            RECURRENT_LAYERS_KEY: [k == DELTANET for k in kinds],
        }
        # The scalar only when it types every layer as the array does, so the
        # two keys never disagree (llama.cpp reads the array first).
        interval = attention_interval(kinds)
        if interval is not None:
            meta[K.LLM.FULL_ATTENTION_INTERVAL] = interval
    return {_key(k, arch): v for k, v in meta.items()}


# --------------------------------------------------------------------------
# GGUF -> HF


def gguf_to_hf(
    arch: str, metadata: Mapping[str, object], tensors: Mapping[str, np.ndarray]
) -> tuple[dict, dict[str, np.ndarray]]:
    """Convert GGUF metadata and f32/f16 tensors back to an HF config and state dict.

    GGUF layer k becomes HF layer k. The config dict holds the keys that
    LlamaConfig / Qwen3_5TextConfig need to rebuild the same model.
    """
    _check_arch(arch)
    for name, x in tensors.items():
        if np.asarray(x).dtype not in (np.float32, np.float16):
            raise RysError(f"tensor '{name}' is {np.asarray(x).dtype}, not f32/f16: dequantize it first")
    cfg = _config(arch, metadata, tensors)
    d = _dims(arch, cfg)
    kinds = hf_layer_kinds(arch, cfg)
    tied = cfg["tie_word_embeddings"]

    rules = [(r, None) for r in _global_rules(arch, tied)]
    rules += [(r, bid) for bid, kind in enumerate(kinds) for r in _block_rules(arch, kind)]
    _check_names(set(tensors), {r.gguf_name(bid) for r, bid in rules}, "GGUF file")
    out = {r.hf_name(bid): r.to_hf(np.asarray(tensors[r.gguf_name(bid)]), d) for r, bid in rules}
    return cfg, out


def _config(arch: str, meta: Mapping[str, object], tensors: Mapping[str, np.ndarray]) -> dict:
    def get(template: str, default=None):
        value = meta.get(_key(template, arch), default)
        if value is None:
            raise RysError(f"the GGUF file has no '{_key(template, arch)}'")
        return value

    K = gguf.Keys
    n_embd, n_head = int(get(K.LLM.EMBEDDING_LENGTH)), int(get(K.Attention.HEAD_COUNT))
    n_layer = int(get(K.LLM.BLOCK_COUNT))
    head_dim = int(get(K.Attention.KEY_LENGTH, n_embd // n_head))
    n_vocab = int(np.shape(tensors[gguf.TENSOR_NAMES[T.TOKEN_EMBD] + ".weight"])[0])
    rope = {"rope_type": "default", "rope_theta": float(get(K.Rope.FREQ_BASE, 10000.0))}
    cfg = {
        "vocab_size": n_vocab,
        "hidden_size": n_embd,
        "intermediate_size": int(get(K.LLM.FEED_FORWARD_LENGTH)),
        "num_hidden_layers": n_layer,
        "num_attention_heads": n_head,
        "num_key_value_heads": int(get(K.Attention.HEAD_COUNT_KV, n_head)),
        "head_dim": head_dim,
        "rms_norm_eps": float(get(K.Attention.LAYERNORM_RMS_EPS)),
        "max_position_embeddings": int(get(K.LLM.CONTEXT_LENGTH, 4096)),
        "tie_word_embeddings": gguf.TENSOR_NAMES[T.OUTPUT] + ".weight" not in tensors,
        "rope_parameters": rope,
    }
    if arch == "qwen35":
        rope["partial_rotary_factor"] = int(get(K.Rope.DIMENSION_COUNT)) / head_dim
        rope["mrope_section"] = [int(s) for s in get(K.Rope.DIMENSION_SECTIONS)][:3]
        rope["mrope_interleaved"] = True
        cfg |= {
            "linear_conv_kernel_dim": int(get(K.SSM.CONV_KERNEL)),
            "linear_key_head_dim": int(get(K.SSM.STATE_SIZE)),
            "linear_value_head_dim": int(get(K.SSM.STATE_SIZE)),
            "linear_num_key_heads": int(get(K.SSM.GROUP_COUNT)),
            "linear_num_value_heads": int(get(K.SSM.TIME_STEP_RANK)),
            "layer_types": [_HF_LAYER_TYPES[k] for k in _gguf_layer_kinds(arch, meta, n_layer)],
        }
    return cfg


def _gguf_layer_kinds(arch: str, meta: Mapping[str, object], n_layer: int) -> list[str]:
    """Layer kinds as llama.cpp reads them: the array first, else the interval."""
    recurrent = meta.get(_key(RECURRENT_LAYERS_KEY, arch))
    if recurrent is not None:
        if len(recurrent) != n_layer:
            raise RysError(f"{_key(RECURRENT_LAYERS_KEY, arch)} has {len(recurrent)} entries for {n_layer} layers")
        return [DELTANET if r else ATTENTION for r in recurrent]
    interval = int(meta.get(_key(gguf.Keys.LLM.FULL_ATTENTION_INTERVAL, arch), 4))
    return [ATTENTION if (i + 1) % interval == 0 else DELTANET for i in range(n_layer)]


# --------------------------------------------------------------------------
# Files


def _value_type(value: object) -> tuple[gguf.GGUFValueType, gguf.GGUFValueType | None]:
    """The GGUF type llama.cpp expects for a Python value.

    Counts and lengths are read as uint32; arrays keep gguf-py's element
    types (bool, int32 as in rope sections, float32).
    """
    V = gguf.GGUFValueType
    if isinstance(value, (list, tuple)):
        if not value:
            raise RysError("cannot write an empty metadata array")
        return V.ARRAY, V.get_type(value[0])
    if isinstance(value, bool):
        return V.BOOL, None
    if isinstance(value, (int, np.integer)):
        return V.UINT32, None
    if isinstance(value, (float, np.floating)):
        return V.FLOAT32, None
    if isinstance(value, str):
        return V.STRING, None
    raise RysError(f"cannot write a metadata value of type {type(value).__name__}")


def write_gguf(
    path: str | Path,
    metadata: Mapping[str, object],
    tensors: Iterable[tuple[str, np.ndarray]],
    vocab_writer: Callable[[gguf.GGUFWriter], None],
) -> None:
    """Write an all-f32 GGUF: metadata, then vocab_writer(writer)'s tokenizer keys, then tensors."""
    arch_key = gguf.Keys.General.ARCHITECTURE
    if arch_key not in metadata:
        raise RysError(f"metadata has no '{arch_key}'")
    writer = gguf.GGUFWriter(str(path), str(metadata[arch_key]))
    for key, value in metadata.items():
        if key != arch_key:  # the writer adds it itself
            vtype, sub_type = _value_type(value)
            writer.add_key_value(key, list(value) if vtype == gguf.GGUFValueType.ARRAY else value, vtype, sub_type)
    vocab_writer(writer)
    for name, x in tensors:
        writer.add_tensor(name, np.ascontiguousarray(x, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def read_gguf(path: str | Path) -> tuple[Metadata, dict[str, np.ndarray]]:
    """Metadata (as Python values) and f32/f16 tensors (numpy axis order) of a GGUF file."""
    reader = gguf.GGUFReader(str(path))
    meta = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    tensors = {}
    for t in reader.tensors:
        if t.tensor_type not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            raise RysError(f"tensor '{t.name}' is {t.tensor_type.name}: only F32/F16 files can be read here")
        tensors[t.name] = np.array(t.data)  # a copy, so the file can close
    return meta, tensors
