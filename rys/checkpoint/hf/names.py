"""Which HF tensor is which GGUF tensor, per architecture and layer kind.

The tables below are architecture facts as data: one Rule per tensor, giving
its HF name, its GGUF name (from gguf-py's TENSOR_NAMES) and its layout
(hf_layout.py). A layer path (GGUF layer k is HF layer path[k]) maps whole
layers; the layer kinds of a Qwen3.5 config decide which rules a layer takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import gguf
import numpy as np

from ...core.errors import RysError
from .layout import (AS_IS, CONV, PLUS_ONE, QKV, ROPE_K, ROPE_Q, SSM_A, V_HEAD_COLUMNS, V_HEAD_ROW, V_HEAD_ROWS, Layout, need)

ARCHITECTURES = ("llama", "qwen35")

# Layer kinds, as llama.cpp types them.
ATTENTION = "attention"
DELTANET = "deltanet"

# HF's names for the Qwen3.5 layer kinds (config.layer_types).
HF_LAYER_TYPES = {DELTANET: "linear_attention", ATTENTION: "full_attention"}
DEFAULT_INTERVAL = 4  # Qwen3.5: full attention every 4th layer when nothing says otherwise


@dataclass(frozen=True)
class Rule:
    """One HF tensor <-> one GGUF tensor.

    hf: the HF name, with "{bid}" for the layer index in block tensors.
    tensor, suffix: the GGUF name is TENSOR_NAMES[tensor] + suffix.
    """

    hf: str
    tensor: gguf.MODEL_TENSOR
    suffix: str = ".weight"
    layout: Layout = AS_IS

    def hf_name(self, bid: int | None = None) -> str:
        return self.hf.format(bid=bid)

    def gguf_name(self, bid: int | None = None) -> str:
        return gguf.TENSOR_NAMES[self.tensor].format(bid=bid) + self.suffix


T = gguf.MODEL_TENSOR
_L = "model.layers.{bid}."

EMBEDDING = Rule("model.embed_tokens.weight", T.TOKEN_EMBD)  # [n_vocab, n_embd]
LM_HEAD = Rule("lm_head.weight", T.OUTPUT)  # absent when tied to the embedding
_GLOBAL = {
    "llama": [EMBEDDING, Rule("model.norm.weight", T.OUTPUT_NORM)],
    "qwen35": [EMBEDDING, Rule("model.norm.weight", T.OUTPUT_NORM, layout=PLUS_ONE)],
}

_MLP = [
    Rule(_L + "mlp.gate_proj.weight", T.FFN_GATE),
    Rule(_L + "mlp.up_proj.weight", T.FFN_UP),
    Rule(_L + "mlp.down_proj.weight", T.FFN_DOWN),
]

_LLAMA_BLOCK = [
    Rule(_L + "input_layernorm.weight", T.ATTN_NORM),
    Rule(_L + "self_attn.q_proj.weight", T.ATTN_Q, layout=ROPE_Q),
    Rule(_L + "self_attn.k_proj.weight", T.ATTN_K, layout=ROPE_K),
    Rule(_L + "self_attn.v_proj.weight", T.ATTN_V),
    Rule(_L + "self_attn.o_proj.weight", T.ATTN_OUT),
    Rule(_L + "post_attention_layernorm.weight", T.FFN_NORM),
    *_MLP,
]

_QWEN35_COMMON = [
    Rule(_L + "input_layernorm.weight", T.ATTN_NORM, layout=PLUS_ONE),
    Rule(_L + "post_attention_layernorm.weight", T.ATTN_POST_NORM, layout=PLUS_ONE),
    *_MLP,
]

_QWEN35_ATTENTION = [
    # q_proj rows: per head, head_dim query rows then head_dim gate rows;
    # llama.cpp views it the same way, so it is copied as it is.
    Rule(_L + "self_attn.q_proj.weight", T.ATTN_Q),
    Rule(_L + "self_attn.k_proj.weight", T.ATTN_K),
    Rule(_L + "self_attn.v_proj.weight", T.ATTN_V),
    Rule(_L + "self_attn.o_proj.weight", T.ATTN_OUT),
    Rule(_L + "self_attn.q_norm.weight", T.ATTN_Q_NORM, layout=PLUS_ONE),
    Rule(_L + "self_attn.k_norm.weight", T.ATTN_K_NORM, layout=PLUS_ONE),
]

_LA = _L + "linear_attn."
_QWEN35_DELTANET = [
    Rule(_LA + "in_proj_qkv.weight", T.ATTN_QKV, layout=QKV),
    Rule(_LA + "in_proj_z.weight", T.ATTN_GATE, layout=V_HEAD_ROWS),  # output gate z
    Rule(_LA + "in_proj_b.weight", T.SSM_BETA, layout=V_HEAD_ROW),
    Rule(_LA + "in_proj_a.weight", T.SSM_ALPHA, layout=V_HEAD_ROW),  # decay input
    Rule(_LA + "A_log", T.SSM_A, suffix="", layout=SSM_A),
    Rule(_LA + "dt_bias", T.SSM_DT, suffix=".bias", layout=V_HEAD_ROW),
    Rule(_LA + "conv1d.weight", T.SSM_CONV1D, layout=CONV),
    # gated RMSNorm over one head [dv]: plain weight (HF computes x * w), shared by heads
    Rule(_LA + "norm.weight", T.SSM_NORM),
    Rule(_LA + "out_proj.weight", T.SSM_OUT, layout=V_HEAD_COLUMNS),
]


def block_rules(arch: str, kind: str) -> list[Rule]:
    """The rules of one layer of this kind."""
    if arch == "llama":
        return _LLAMA_BLOCK
    mixer = _QWEN35_ATTENTION if kind == ATTENTION else _QWEN35_DELTANET
    return _QWEN35_COMMON + mixer


def global_rules(arch: str, tied: bool) -> list[Rule]:
    """The rules of the tensors outside any layer (no lm_head when tied to the embedding)."""
    return _GLOBAL[arch] + ([] if tied else [LM_HEAD])


def check_arch(arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise RysError(f"architecture '{arch}' has no HF mapping (known: {', '.join(ARCHITECTURES)})")


# --------------------------------------------------------------------------
# Layer kinds and paths


def hf_layer_kinds(arch: str, cfg: Mapping) -> list[str]:
    """The kind of each HF layer: ATTENTION or DELTANET."""
    n_layer = need(cfg, "num_hidden_layers")
    if arch == "llama":
        return [ATTENTION] * n_layer
    types = cfg.get("layer_types")
    if types is None:
        return interval_kinds(n_layer, cfg.get("full_attention_interval") or DEFAULT_INTERVAL)
    if len(types) != n_layer:
        raise RysError(f"layer_types has {len(types)} entries for {n_layer} layers")
    by_hf = {v: k for k, v in HF_LAYER_TYPES.items()}
    unknown = sorted(set(types) - set(by_hf))
    if unknown:
        raise RysError(f"unknown Qwen3.5 layer type '{unknown[0]}'")
    return [by_hf[t] for t in types]


def interval_kinds(n_layer: int, interval: int) -> list[str]:
    """Qwen3.5 kinds from the scalar: layer i is attention iff (i+1) % interval == 0."""
    return [ATTENTION if (i + 1) % interval == 0 else DELTANET for i in range(n_layer)]


def attention_interval(kinds: Sequence[str]) -> int | None:
    """The period p with "attention iff (i+1) % p == 0" for every layer, if any.

    This is how llama.cpp types qwen35 layers from the scalar
    `full_attention_interval` when the per-layer array is absent. A path
    with no attention layer at all has period len(kinds) + 1.
    """
    for p in range(1, len(kinds) + 2):
        if interval_kinds(len(kinds), p) == list(kinds):
            return p
    return None


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


# --------------------------------------------------------------------------
# Whole models


def tensor_names(
    arch: str, hf_config: Mapping, layer_path: Sequence[int] | None = None, tied: bool | None = None
) -> list[tuple[str, str]]:
    """(HF name, GGUF name) of every tensor, in the order hf_to_gguf writes them.

    tied defaults to the config's tie_word_embeddings (no lm_head -> output).
    """
    check_arch(arch)
    kinds = hf_layer_kinds(arch, hf_config)
    path = check_path(layer_path, len(kinds))
    if tied is None:
        tied = bool(hf_config.get("tie_word_embeddings", False))
    return [(r.hf_name(src), r.gguf_name(new)) for r, src, new in plan(arch, kinds, tied, path)]


def plan(
    arch: str, kinds: Sequence[str], tied: bool, path: Sequence[int]
) -> Iterator[tuple[Rule, int | None, int | None]]:
    """(rule, HF layer, GGUF layer) for every output tensor; None for globals."""
    for rule in global_rules(arch, tied):
        yield rule, None, None
    for new, src in enumerate(path):
        for rule in block_rules(arch, kinds[src]):
            yield rule, src, new


def check_names(have: set[str], expected: set[str], what: str) -> None:
    """RysError for a tensor without a rule or a rule without its tensor."""
    # A tied checkpoint may still list lm_head.weight (same array): allowed.
    unknown = sorted(have - expected - {LM_HEAD.hf_name()})
    if unknown:
        raise RysError(f"{what}: no mapping for tensor '{unknown[0]}' ({len(unknown)} unmapped)")
    missing = sorted(expected - have)
    if missing:
        raise RysError(f"{what}: tensor '{missing[0]}' is missing ({len(missing)} missing)")
