"""What can be pruned in each architecture, and which slices of which tensors a unit owns.

Facts as data. A unit is a query head (HEADS), a key/value head (KV_HEADS),
an MLP channel (MLP) or a Gated DeltaNet value head (V_HEADS). A Cut says
which unit kind owns rows (axis 0) or columns (axis 1) of a tensor, how many
per unit (`width`, a Geometry field) and where the first unit starts
(`offset`: in_proj_qkv and conv1d hold q and k channels before the v heads).
Tensors of a layer without a Cut with a unit are copied as they are; a layer
tensor with no Cut at all is refused, since nobody knows what it holds.

Layouts (HF, checked against transformers' modeling code):
- q_proj [n_head * hd, n_embd]: head h owns rows [h*hd, (h+1)*hd); Qwen3.5's
  gated q_proj [n_head * 2hd, n_embd] holds each head's query then its gate,
  so head h owns rows [2h*hd, 2(h+1)*hd). o_proj [n_embd, n_head*hd]: columns.
- k_proj, v_proj [n_kv * hd, n_embd]: KV head j owns rows [j*hd, (j+1)*hd);
  query head h reads KV head h // (n_head / n_kv).
- Gated DeltaNet: in_proj_qkv [2*nk*dk + nv*dv, n_embd] and conv1d [same, 1, K]
  hold q, k, then v; v head j owns v rows [j*dv, (j+1)*dv), in_proj_z rows
  [j*dv, (j+1)*dv), in_proj_a/b row j, A_log[j], dt_bias[j], out_proj
  columns [j*dv, (j+1)*dv), and reads k head j // (nv / nk).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import torch

from ...core.errors import RysError
from ..hf.names import ATTENTION, DELTANET, hf_layer_kinds

HEADS, KV_HEADS, MLP, V_HEADS = "heads", "kv_heads", "mlp", "v_heads"
UNITS = (HEADS, KV_HEADS, MLP, V_HEADS)

# The inputs calibration records in every layer (each the input of a linear).
MIXER_IN, MIXER_OUT, MLP_IN, MLP_OUT = "mixer_in", "mixer_out", "mlp_in", "mlp_out"


@dataclass(frozen=True)
class Cut:
    """The slices of one layer tensor that belong to units of one kind."""

    name: str  # inside the layer: "self_attn.q_proj.weight"
    unit: str | None = None  # None: copied as it is
    axis: int = 0
    width: str = "one"  # Geometry field: elements per unit along `axis`
    offset: str = "zero"  # Geometry field: elements before the first unit
    stat: str | None = None  # the recorded input this weight multiplies (wanda, magnitude)


def _linear(name: str, unit: str, axis: int, width: str, stat: str, bias: bool = True, offset: str = "zero") -> list[Cut]:
    cuts = [Cut(f"{name}.weight", unit, axis, width, offset, stat)]
    if bias:  # a bias exists on rows only; a column cut leaves the bias [n_embd] as it is
        cuts.append(Cut(f"{name}.bias", unit if axis == 0 else None, 0, width, offset))
    return cuts


NORMS = [Cut("input_layernorm.weight"), Cut("post_attention_layernorm.weight")]
MLP_CUTS = [
    *_linear("mlp.gate_proj", MLP, 0, "one", MLP_IN),
    *_linear("mlp.up_proj", MLP, 0, "one", MLP_IN),
    *_linear("mlp.down_proj", MLP, 1, "one", MLP_OUT),
]


def attention_cuts(q_width: str) -> list[Cut]:
    return [
        *_linear("self_attn.q_proj", HEADS, 0, q_width, MIXER_IN),
        *_linear("self_attn.k_proj", KV_HEADS, 0, "head_dim", MIXER_IN),
        *_linear("self_attn.v_proj", KV_HEADS, 0, "head_dim", MIXER_IN),
        *_linear("self_attn.o_proj", HEADS, 1, "head_dim", MIXER_OUT),
        Cut("self_attn.q_norm.weight"), Cut("self_attn.k_norm.weight"),  # [hd], shared by the heads
    ]


_LA = "linear_attn."
DELTANET_CUTS = [
    Cut(_LA + "in_proj_qkv.weight", V_HEADS, 0, "dv", "qk_rows", MIXER_IN),
    *_linear(_LA + "conv1d", V_HEADS, 0, "dv", None, offset="qk_rows"),  # [channels, 1, K]
    Cut(_LA + "in_proj_z.weight", V_HEADS, 0, "dv", stat=MIXER_IN),
    Cut(_LA + "in_proj_a.weight", V_HEADS, 0, "one", stat=MIXER_IN),
    Cut(_LA + "in_proj_b.weight", V_HEADS, 0, "one", stat=MIXER_IN),
    Cut(_LA + "A_log", V_HEADS), Cut(_LA + "dt_bias", V_HEADS),
    Cut(_LA + "norm.weight"),  # [dv], shared by the heads
    Cut(_LA + "out_proj.weight", V_HEADS, 1, "dv", stat=MIXER_OUT),
]

# The modules whose inputs calibration records, per layer kind.
RECORDED = {
    ATTENTION: {MIXER_IN: "self_attn.q_proj", MIXER_OUT: "self_attn.o_proj", MLP_IN: "mlp.gate_proj", MLP_OUT: "mlp.down_proj"},
    DELTANET: {MIXER_IN: "linear_attn.in_proj_qkv", MIXER_OUT: "linear_attn.out_proj", MLP_IN: "mlp.gate_proj", MLP_OUT: "mlp.down_proj"},
}
# Activation importance: the recorded input whose per-unit slice is measured, and its width.
ACTIVATION = {HEADS: (MIXER_OUT, "head_dim"), V_HEADS: (MIXER_OUT, "dv"), MLP: (MLP_OUT, "one")}

_QWEN2_HEADS = ("llama.cpp's qwen2 fixes attn_q and attn_output at n_embd x n_embd, "
                "so no query head can go (and removing a KV head removes its query heads)")


@dataclass(frozen=True)
class Arch:
    """One prunable architecture."""

    name: str  # config.json's model_type
    classes: tuple[str, ...]  # config.json's architectures
    gated_q: bool = False  # Qwen3.5: q_proj holds a gate after each head's query
    hybrid: bool = False  # Qwen3.5: layer_types mixes attention and Gated DeltaNet
    refused: tuple[tuple[str, str], ...] = ()  # (unit kind, why it cannot be pruned)

    def refusal(self, unit: str) -> str | None:
        return dict(self.refused).get(unit)


ARCHES = {a.name: a for a in (
    Arch("llama", ("LlamaForCausalLM",)),
    Arch("mistral", ("MistralForCausalLM",)),
    Arch("qwen2", ("Qwen2ForCausalLM",), refused=((HEADS, _QWEN2_HEADS), (KV_HEADS, _QWEN2_HEADS))),
    Arch("qwen3", ("Qwen3ForCausalLM",)),
    Arch("qwen3_5_text", ("Qwen3_5ForCausalLM",), gated_q=True, hybrid=True),
)}


def arch_of(config: Mapping) -> Arch:
    """The Arch of a checkpoint's config.json, or RysError naming what is known."""
    model_type, classes = config.get("model_type"), list(config.get("architectures") or [])
    arch = ARCHES.get(model_type)
    if arch is None or (classes and classes[0] not in arch.classes):
        known = ", ".join(f"{c} ({a.name})" for a in ARCHES.values() for c in a.classes)
        got = f"{classes[0] if classes else 'no architectures'} (model_type {model_type})"
        raise RysError(f"rys prune cannot prune {got}: it knows {known}")
    return arch


def layer_kinds(arch: Arch, config: Mapping) -> list[str]:
    """ATTENTION or DELTANET for every layer."""
    if arch.hybrid:
        return hf_layer_kinds("qwen35", config)
    return [ATTENTION] * int(config["num_hidden_layers"])


def layer_cuts(arch: Arch, kind: str) -> dict[str, Cut]:
    """Every tensor a layer of this kind may hold, by its name inside the layer."""
    mixer = attention_cuts("q_rows" if arch.gated_q else "head_dim") if kind == ATTENTION else DELTANET_CUTS
    return {c.name: c for c in [*NORMS, *mixer, *MLP_CUTS]}


def layer_units(kind: str) -> tuple[str, ...]:
    return (HEADS, KV_HEADS, MLP) if kind == ATTENTION else (V_HEADS, MLP)


@dataclass(frozen=True)
class Geometry:
    """The unit counts and widths of a (uniform) model: from its config, or after pruning."""

    heads: int
    kv_heads: int
    mlp: int
    v_heads: int  # Gated DeltaNet value heads (0 without DeltaNet layers)
    k_heads: int  # Gated DeltaNet key heads
    head_dim: int
    dk: int
    dv: int
    gated_q: bool = False
    one: int = 1
    zero: int = 0

    @property
    def q_rows(self) -> int:  # q_proj rows per head
        return 2 * self.head_dim if self.gated_q else self.head_dim

    @property
    def qk_rows(self) -> int:  # in_proj_qkv rows before the v heads
        return 2 * self.k_heads * self.dk

    def count(self, unit: str) -> int:
        return getattr(self, unit)

    def with_counts(self, counts: Mapping[str, int]) -> "Geometry":
        return replace(self, **counts)


def geometry(arch: Arch, config: Mapping) -> Geometry:
    try:
        heads = int(config["num_attention_heads"])
        return Geometry(
            heads=heads, kv_heads=int(config.get("num_key_value_heads") or heads),
            mlp=int(config["intermediate_size"]),
            v_heads=int(config.get("linear_num_value_heads") or 0) if arch.hybrid else 0,
            k_heads=int(config.get("linear_num_key_heads") or 0) if arch.hybrid else 0,
            head_dim=int(config.get("head_dim") or int(config["hidden_size"]) // heads),
            dk=int(config.get("linear_key_head_dim") or 0), dv=int(config.get("linear_value_head_dim") or 0),
            gated_q=arch.gated_q,
        )
    except KeyError as e:
        raise RysError(f"config.json has no {e.args[0]}") from None


def pruned_config(config: Mapping, old: Geometry, new: Geometry) -> dict:
    """config.json of the pruned model: the new counts, head_dim written out."""
    out = dict(config)
    out["num_attention_heads"], out["num_key_value_heads"] = new.heads, new.kv_heads
    out["intermediate_size"] = new.mlp
    if not out.get("head_dim"):  # llama derives it from hidden_size / heads, which no longer holds
        out["head_dim"] = old.head_dim
    if old.v_heads:
        out["linear_num_value_heads"] = new.v_heads
    return out


# --------------------------------------------------------------------------
# Slicing


def kept_positions(cut: Cut, size: int, geo: Geometry, kept: list[int]) -> torch.Tensor:
    """Indices along the cut's axis that stay when these units (source indices) stay."""
    w, start = getattr(geo, cut.width), getattr(geo, cut.offset)
    n = geo.count(cut.unit)
    if start + n * w > size:
        raise RysError(f"{cut.name}: {size} along axis {cut.axis}, but {n} {cut.unit} of {w} need {start + n * w}")
    units = torch.tensor(kept, dtype=torch.long)
    inside = (units[:, None] * w + torch.arange(w)[None, :]).reshape(-1) + start
    return torch.cat([torch.arange(start), inside, torch.arange(start + n * w, size)])


def cut_shape(cut: Cut, shape: tuple[int, ...], old: Geometry, new: Geometry) -> tuple[int, ...]:
    """The shape of a tensor after the cut: only the unit count along its axis changes."""
    if cut.unit is None:
        return shape
    out = list(shape)
    out[cut.axis] -= (old.count(cut.unit) - new.count(cut.unit)) * getattr(old, cut.width)
    return tuple(out)


def cut_tensor(t: torch.Tensor, cut: Cut, geo: Geometry, kept: list[int], mask: bool) -> torch.Tensor:
    """The tensor with only the kept units (mask=False), or the same shape with the others zeroed."""
    if cut.unit is None:
        return t
    idx = kept_positions(cut, t.shape[cut.axis], geo, kept)
    if not mask:
        return t.index_select(cut.axis, idx)
    keep = torch.zeros(t.shape[cut.axis], dtype=torch.bool)
    keep[idx] = True
    shape = [1] * t.dim()
    shape[cut.axis] = -1
    return torch.where(keep.view(shape), t, torch.zeros((), dtype=t.dtype))
