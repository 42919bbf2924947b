"""How much each unit of each layer matters: one score per query head, KV head,
MLP channel and Gated DeltaNet value head (higher = keep).

Criteria:
- activation: the mean over calibration tokens of the L2 norm of the unit's
  slice of its output linear's input (a head's slice of o_proj's input, a
  value head's slice of out_proj's input, a channel of down_proj's input).
- wanda: sum over the unit's weights of |W_ij| * ||X_j||2, X_j the input
  feature j of that linear over the calibration tokens (Sun et al. 2023,
  summed over the rows/columns a unit owns: q/k/v rows, o_proj columns, ...).
- magnitude: the same sum with ||X_j|| = 1: weights only, no calibration.
- random: seeded uniform scores, the control every criterion must beat.
A KV head's score adds its query heads' scores to its own k/v rows' (a
removed KV head takes its query heads with it).

`importance` yields the scores layer by layer and never holds more than one
layer: the uniform pruner of rys.checkpoint.prune.uniform and a per-layer budget both start here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from .calibration import Calibration, LayerStats, run_layers
from ...core.errors import RysError
from ..hf.folder import Checkpoint
from .rules import (ACTIVATION, HEADS, KV_HEADS, UNITS, Arch, Cut, Geometry, layer_cuts, layer_kinds, layer_units)

CRITERIA = ("activation", "wanda", "magnitude", "random")
NEEDS_CALIBRATION = ("activation", "wanda")


@dataclass(frozen=True)
class LayerScores:
    index: int
    kind: str  # hf_names.ATTENTION or DELTANET
    scores: dict[str, torch.Tensor]  # unit kind -> [units in the layer], float64

    def get(self, unit: str) -> torch.Tensor | None:
        return self.scores.get(unit)


def _unit_sums(per_position: torch.Tensor, cut: Cut, geo: Geometry) -> torch.Tensor:
    """Per-position sums along a cut's axis -> one sum per unit [count]."""
    w, start, n = getattr(geo, cut.width), getattr(geo, cut.offset), geo.count(cut.unit)
    return per_position[start:start + n * w].reshape(n, w).sum(1)


def weight_scores(kind: str, geo: Geometry, tensors: dict[str, torch.Tensor],
                  stats: LayerStats | None, arch: Arch) -> dict[str, torch.Tensor]:
    """Wanda (stats given) or magnitude (stats None) scores of every unit of one layer."""
    scores = {u: torch.zeros(geo.count(u), dtype=torch.float64) for u in layer_units(kind)}
    for cut in layer_cuts(arch, kind).values():
        if cut.unit is None or cut.stat is None or cut.name not in tensors:
            continue
        w = tensors[cut.name].double().abs()  # [out, in]
        if stats is not None:
            w = w * stats.input_norm(cut.stat)[None, :]
        scores[cut.unit] += _unit_sums(w.sum(1 - cut.axis), cut, geo)
    return scores


def activation_scores(kind: str, geo: Geometry, stats: LayerStats) -> dict[str, torch.Tensor]:
    """Activation scores of every unit of one layer (KV heads get theirs from their query heads)."""
    scores = {}
    for unit in layer_units(kind):
        if unit in ACTIVATION:
            scores[unit] = stats.mean_l2(ACTIVATION[unit][0]).clone()
        else:
            scores[unit] = torch.zeros(geo.count(unit), dtype=torch.float64)
    return scores


def random_scores(kind: str, geo: Geometry, index: int, seed: int) -> dict[str, torch.Tensor]:
    """Uniform scores from a generator seeded by (seed, layer, unit kind): reproducible."""
    scores = {}
    for unit in layer_units(kind):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + index * len(UNITS) + UNITS.index(unit))
        scores[unit] = torch.rand(geo.count(unit), generator=gen, dtype=torch.float64)
    return scores


def add_query_heads(scores: dict[str, torch.Tensor], geo: Geometry) -> None:
    """A KV head's score += the scores of the query heads that read it."""
    if HEADS in scores:
        scores[KV_HEADS] = scores[KV_HEADS] + scores[HEADS].reshape(geo.kv_heads, -1).sum(1)


def score_layer(criterion: str, arch: Arch, geo: Geometry, index: int, kind: str,
                tensors: dict[str, torch.Tensor], stats: LayerStats | None, seed: int = 0) -> LayerScores:
    """The scores of one layer's units by one criterion."""
    if criterion == "random":
        return LayerScores(index, kind, random_scores(kind, geo, index, seed))
    if criterion in NEEDS_CALIBRATION and stats is None:
        raise RysError(f"--criterion {criterion} needs calibration text (--calib FILE)")
    if criterion == "activation":
        scores = activation_scores(kind, geo, stats)
    elif criterion in ("wanda", "magnitude"):
        scores = weight_scores(kind, geo, tensors, stats if criterion == "wanda" else None, arch)
    else:
        raise RysError(f"unknown criterion '{criterion}' (known: {', '.join(CRITERIA)})")
    add_query_heads(scores, geo)
    return LayerScores(index, kind, scores)


def importance(ckpt: Checkpoint, arch: Arch, geo: Geometry, criterion: str, calib: Calibration | None = None,
               seed: int = 0, device: torch.device | None = None,
               progress: Callable[[int], None] | None = None) -> Iterator[LayerScores]:
    """Every layer's LayerScores, in layer order, reading one layer at a time."""
    kinds = layer_kinds(arch, ckpt.config)
    if criterion in NEEDS_CALIBRATION:
        if calib is None:
            raise RysError(f"--criterion {criterion} needs calibration text (--calib FILE)")
        layers = run_layers(ckpt, arch, geo, calib, device)
    elif criterion == "magnitude":
        layers = ((i, ckpt.read_layer(i), None) for i in range(len(kinds)))
    else:
        layers = ((i, {}, None) for i in range(len(kinds)))
    for i, tensors, stats in layers:
        yield score_layer(criterion, arch, geo, i, kinds[i], tensors, stats, seed)
        del tensors
        if progress:
            progress(1)
