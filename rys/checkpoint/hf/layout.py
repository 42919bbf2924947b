"""Sizes of an HF model and the tensor layouts that differ between HF and GGUF.

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
into ggml's ``ne`` order. Which tensor takes which layout is in hf_names.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from ...core.errors import RysError

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


def dims(arch: str, cfg: Mapping) -> Dims:
    """The sizes of an HF config; RysError for what llama.cpp cannot compute."""
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise RysError(f"{arch}: llama.cpp computes a SiLU MLP, the HF config says hidden_act '{act}'")
    n_head = need(cfg, "num_attention_heads")
    n_embd = need(cfg, "hidden_size")
    base = dict(
        n_layer=need(cfg, "num_hidden_layers"),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=cfg.get("num_key_value_heads") or n_head,
        head_dim=cfg.get("head_dim") or n_embd // n_head,
    )
    if arch == "llama":
        return Dims(**base)
    k_dim, v_dim = need(cfg, "linear_key_head_dim"), need(cfg, "linear_value_head_dim")
    if k_dim != v_dim:
        raise RysError(f"qwen35: llama.cpp needs linear_key_head_dim == linear_value_head_dim ({k_dim} != {v_dim})")
    k_heads, v_heads = need(cfg, "linear_num_key_heads"), need(cfg, "linear_num_value_heads")
    if v_heads % k_heads:
        raise RysError(f"qwen35: linear_num_value_heads ({v_heads}) is not a multiple of "
                       f"linear_num_key_heads ({k_heads})")
    return Dims(**base, lin_k_heads=k_heads, lin_v_heads=v_heads, lin_head_dim=k_dim)


def need(cfg: Mapping, key: str):
    """cfg[key], or RysError when the HF config lacks it."""
    if cfg.get(key) is None:
        raise RysError(f"the HF config has no '{key}'")
    return cfg[key]


# --------------------------------------------------------------------------
# Tensor transforms. Each takes and returns a numpy array; `d` gives sizes.

Transform = Callable[[np.ndarray, Dims], np.ndarray]


@dataclass(frozen=True)
class Layout:
    """How one kind of tensor goes HF -> GGUF, and back (the inverse)."""

    to_gguf: Transform
    to_hf: Transform


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


def _rope(n_heads: Callable[[Dims], int]) -> Layout:
    return Layout(lambda x, d: _rope_perm(x, n_heads(d), to_gguf=True),
                  lambda x, d: _rope_perm(x, n_heads(d), to_gguf=False))


# qwen35 DeltaNet: value heads grouped by key head (HF) <-> tiled (ggml).
def _v_tiled(x: np.ndarray, d: Dims, axis: int, size: int) -> np.ndarray:
    return _swap_groups(x, axis, d.lin_k_heads, d.v_per_k, size)


def _v_grouped(x: np.ndarray, d: Dims, axis: int, size: int) -> np.ndarray:
    return _swap_groups(x, axis, d.v_per_k, d.lin_k_heads, size)


def _heads(axis: int, per_head: Callable[[Dims], int]) -> Layout:
    """Value heads reordered along `axis`, each head spanning per_head(d) entries."""
    return Layout(lambda x, d: _v_tiled(x, d, axis, per_head(d)),
                  lambda x, d: _v_grouped(x, d, axis, per_head(d)))


def _qkv_rows(reorder):
    """Reorder only the value rows of [q; k; v] (in_proj_qkv, conv1d)."""

    def f(x: np.ndarray, d: Dims) -> np.ndarray:
        qk = 2 * d.lin_k_heads * d.lin_head_dim  # q and k channels at the front
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


def _head_dim_v(d: Dims) -> int:
    return d.lin_head_dim


def _one(d: Dims) -> int:
    return 1


AS_IS = Layout(_identity, _identity)
# zero-centred RMSNorm weight w (HF computes x * (1 + w)) <-> 1 + w
PLUS_ONE = Layout(_plus_one, _minus_one)
# llama q_proj / k_proj rows [heads*head_dim, n_embd]: rope pairs per head
ROPE_Q = _rope(lambda d: d.n_head)
ROPE_K = _rope(lambda d: d.n_head_kv)
# DeltaNet [q; k; v] rows [2*K*dk + V*dv, n_embd]: value rows reordered
QKV = Layout(_qkv_rows(_v_tiled), _qkv_rows(_v_grouped))
# DeltaNet depthwise conv over [q; k; v] channels: [C, 1, kernel] <-> [C, kernel]
CONV = Layout(_conv_to_gguf, _conv_to_hf)
# DeltaNet A_log [V] <-> ssm_a = -exp(A_log)
SSM_A = Layout(_a_to_gguf, _a_to_hf)
# DeltaNet tensors with dv rows per value head (output gate z [V*dv, n_embd])
V_HEAD_ROWS = _heads(0, _head_dim_v)
# DeltaNet tensors with one row per value head (beta, alpha [V, n_embd]; dt_bias [V])
V_HEAD_ROW = _heads(0, _one)
# DeltaNet output projection [n_embd, V*dv]: input columns reordered
V_HEAD_COLUMNS = _heads(1, _head_dim_v)
