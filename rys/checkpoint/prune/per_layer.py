"""`rys prune --per-layer`: each layer keeps its own number of heads and channels,
under one budget for the whole model, written as a llama.cpp `deci` GGUF.

The budget is what the uniform options mean (rys.checkpoint.prune.uniform.new_geometry: --heads
0.25 keeps 75% of all query heads), spent where importance is lowest. Scores
(rys.checkpoint.prune.importance) are divided by their layer's mean for each unit kind, so a
unit counts by how it compares with its own layer (activations grow with
depth). Removals come in steps, cheapest first (the mean normalised score of
what a step removes): one KV head (with its query heads); one query head from
every kept KV group of a layer (GQA stays: every group of a layer keeps the
same number); or --multiple MLP channels (widths stay multiples of it, once
snapped down). Floors, from llama.cpp's deci graph: layer 0 keeps a KV head
(llama.cpp sizes heads from layer 0); every layer does when o_proj has a bias
(a deci layer without heads has no attention output, so no bias either); a
KV group keeps a query head; an MLP keeps --multiple channels (a deci layer
with attention but no FFN drops its attention output).

Only llama-style blocks (llama, mistral) fit deci. The file: the checkpoint's
vocabulary and hparams from llama.cpp's own converter (a llama GGUF, given
here as `vocab`: --vocab-only is enough), renamed to deci.*; per-layer
head_count, head_count_kv, feed_forward_length arrays; key_length =
value_length = rope.dimension_count = head_dim; f32 tensors under llama's
names with llama's rope permutation of q/k rows (per layer head counts), and
llama3 rope factors as rope_freqs. Beside it, OUT.gguf.rys_prune.json lists
every layer's kept source indices.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import gguf
import numpy as np
import torch

from ...core import gguf_file
from . import uniform
from ...core.arch import key
from ...core.errors import RysError
from ...core.files import atomic_path, write_atomic
from ..hf.folder import Checkpoint
from ..hf.layout import Layout, dims
from ..hf.names import ATTENTION, block_rules, global_rules
from .importance import LayerScores, importance
from .rules import HEADS, KV_HEADS, MLP, arch_of, cut_tensor, kept_positions, layer_cuts

LLAMA_STYLE = ("llama", "mistral")
DECI = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.DECI]
SOURCE_ARCH = "llama"  # what llama.cpp's converter writes for these checkpoints
PROVENANCE_SUFFIX = ".rys_prune.json"
ROPE_TYPES = ("default", "llama3")  # checked against llama.cpp; others are refused
T = gguf.MODEL_TENSOR
ATTENTION_TENSORS = (T.ATTN_NORM, T.ATTN_Q, T.ATTN_K, T.ATTN_V, T.ATTN_OUT)


def provenance_path(out: Path) -> Path:
    return out.with_name(out.name + PROVENANCE_SUFFIX)


# --------------------------------------------------------------------------
# Checks


def _check_request(request: uniform.Request, out: Path) -> None:
    if request.v_heads:
        raise RysError("--per-layer prunes attention heads and MLP channels of llama-style blocks: "
                       "--deltanet-v-heads cannot go with it")
    if request.mask_only:
        raise RysError("--mask-only cannot go with --per-layer (which writes a deci GGUF; "
                       f"the kept units are listed in {provenance_path(out).name})")
    if out.suffix.lower() != ".gguf":
        raise RysError(f"--per-layer writes a deci GGUF file: name the output *.gguf, not {out.name}")


def _check_model(ckpt: Checkpoint) -> None:
    arch = arch_of(ckpt.config)
    if arch.name not in LLAMA_STYLE:
        raise RysError(f"--per-layer writes llama.cpp's deci architecture, which holds llama-style blocks only "
                       f"(llama, mistral), not {arch.name}: prune it without --per-layer")
    params = ckpt.config.get("rope_parameters") or ckpt.config.get("rope_scaling") or {}
    rope = params.get("rope_type") or params.get("type") or "default"
    if rope not in ROPE_TYPES:
        raise RysError(f"--per-layer: rope_type '{rope}' is not supported yet (only {', '.join(ROPE_TYPES)})")
    dims(SOURCE_ARCH, ckpt.config)  # llama.cpp computes a SiLU MLP


def _check_gguf_output(out: Path, source: Path, force: bool) -> None:
    gguf_file.check_output(out, force, need_bytes=0)


def prepare(model_dir, out, request: uniform.Request, force: bool = False) -> uniform.Job:
    """Every check before any work (rys.checkpoint.prune.uniform.prepare's, and deci's); the job to run."""
    out = Path(out)
    _check_request(request, out)
    _check_model(Checkpoint(model_dir))
    job = uniform.prepare(model_dir, out, request, force, check_out=_check_gguf_output)
    entries(job.ckpt, [{KV_HEADS: [0]}] * len(job.kinds))  # every tensor has its deci name
    k = uniform.K_QUANT_BLOCK
    job.notes = [n for n in job.notes if not n.startswith("MLP width")]  # the uniform width's note
    if request.mlp and request.multiple % k:
        job.notes.append(f"MLP widths are multiples of --multiple {request.multiple}: where one is not a multiple "
                         f"of {k}, llama-quantize falls back to another type than a K-quant for ffn_down")
    if _attention_bias(job.ckpt) and request.kv_heads:
        job.notes.append("o_proj has a bias: every layer keeps at least one KV head "
                         "(a deci layer without heads has no attention output, so no bias either)")
    return job


def _attention_bias(ckpt: Checkpoint) -> bool:
    return any(n.endswith("self_attn.o_proj.bias") for n in ckpt.tensors)


# --------------------------------------------------------------------------
# The budget: how many units each layer keeps


@dataclass(frozen=True, order=True)
class Step:
    """Removing `size` units from one layer; a layer's steps are taken in `index` order."""

    cost: float  # mean normalised score of what goes
    layer: int
    index: int
    size: int


def normalised(scores: torch.Tensor) -> list[float]:
    """Scores divided by their mean (all equal when the mean is not positive)."""
    mean = float(scores.double().mean()) if scores.numel() else 0.0
    if not math.isfinite(mean) or mean <= 0:
        return [1.0] * scores.numel()
    return (scores.double() / mean).tolist()


def allocate(steps: list[Step], need: int, n_layers: int) -> list[int]:
    """Steps taken per layer, cheapest first, removing at least `need` units: first
    only steps that do not overshoot (exact when sizes allow), then any."""
    taken, removed = [0] * n_layers, 0
    ordered = sorted(steps)
    for strict in (True, False):
        for s in ordered:
            if removed >= need:
                return taken
            if taken[s.layer] == s.index and not (strict and removed + s.size > need):
                taken[s.layer] += 1
                removed += s.size
    if removed < need:
        raise RysError(f"cannot remove {need} units within the floors (at most {removed})")
    return taken


def kv_steps(layers: list[LayerScores], floors: list[int]) -> list[Step]:
    """One KV head (its whole group) at a time, lowest first; floors[l] stay."""
    steps = []
    for l, layer in enumerate(layers):
        costs = sorted(normalised(layer.scores[KV_HEADS]))
        steps += [Step(c, l, j, 1) for j, c in enumerate(costs[:len(costs) - floors[l]])]
    return steps


def head_steps(layers: list[LayerScores], kept_kv: list[list[int]], group: int) -> list[Step]:
    """One query head from every kept KV group of a layer at a time; one head per group stays."""
    steps = []
    for l, layer in enumerate(layers):
        if not kept_kv[l]:
            continue
        s = normalised(layer.scores[HEADS])
        per_group = [sorted(s[g * group:(g + 1) * group]) for g in kept_kv[l]]
        for j in range(group - 1):
            cost = sum(g[j] for g in per_group) / len(per_group)
            steps.append(Step(cost, l, j, len(per_group)))
    return steps


def mlp_steps(layers: list[LayerScores], start: int, multiple: int) -> list[Step]:
    """--multiple channels at a time from widths already snapped to `start`; one chunk stays."""
    steps = []
    for l, layer in enumerate(layers):
        s = sorted(normalised(layer.scores[MLP]))
        s = s[len(s) - start:]  # the lowest go first, in the snap
        for j in range(start // multiple - 1):
            chunk = s[j * multiple:(j + 1) * multiple]
            steps.append(Step(sum(chunk) / multiple, l, j, multiple))
    return steps


def plan(layers: list[LayerScores], old, new, request: uniform.Request, bias: bool) -> list[dict[str, list[int]]]:
    """Kept source indices of every layer: {HEADS, KV_HEADS, MLP: [...]}, under the global budget."""
    n, group = len(layers), old.heads // old.kv_heads
    kv_count = [old.kv_heads] * n
    if request.kv_heads:
        floors = [1 if (l == 0 or bias) else 0 for l in range(n)]
        taken = allocate(kv_steps(layers, floors), n * (old.kv_heads - new.kv_heads), n)
        kv_count = [old.kv_heads - t for t in taken]
    kept_kv = [uniform.top(layer.scores[KV_HEADS], k) for layer, k in zip(layers, kv_count)]
    per_group = [group if k else 0 for k in kv_count]
    if request.heads:
        have = sum(k * group for k in kv_count)
        taken = allocate(head_steps(layers, kept_kv, group), have - n * new.heads, n)
        per_group = [group - t if k else 0 for t, k in zip(taken, kv_count)]
    width = [old.mlp] * n
    if request.mlp:
        start = old.mlp // request.multiple * request.multiple
        taken = allocate(mlp_steps(layers, start, request.multiple), n * (start - new.mlp), n)
        width = [start - t * request.multiple for t in taken]
    return [{KV_HEADS: kv, HEADS: uniform.grouped(layer.scores[HEADS], kv, group, q), MLP: uniform.top(layer.scores[MLP], w)}
            for layer, kv, q, w in zip(layers, kept_kv, per_group, width)]


# --------------------------------------------------------------------------
# Tensors: HF slices in GGUF layout, made one layer at a time


@dataclass(frozen=True)
class Entry:
    """One output tensor: its GGUF name, the HF tensor it comes from, its layout."""

    gguf: str
    hf: str  # full HF name
    layout: Layout
    layer: int | None  # None: outside the layers


def _layer_entries(i: int, attention: bool) -> list[Entry]:
    """Every tensor a llama layer may hold (biases with their weights, in the same layout)."""
    return [Entry(rule.gguf_name(i).removesuffix(".weight") + suffix, rule.hf_name(i).removesuffix(".weight") + suffix,
                  rule.layout, i)
            for rule in block_rules(SOURCE_ARCH, ATTENTION) if attention or rule.tensor not in ATTENTION_TENSORS
            for suffix in (".weight", ".bias")]


def entries(ckpt: Checkpoint, kept: list[dict[str, list[int]]]) -> list[Entry]:
    """Every output tensor in file order: globals, then each layer's (no attention where no head stays).
    RysError for a tensor the checkpoint lacks, or one it holds that nothing maps."""
    tied = bool(ckpt.config.get("tie_word_embeddings", False))
    out = [Entry(r.gguf_name(), r.hf_name(), r.layout, None) for r in global_rules(SOURCE_ARCH, tied)]
    for i, keep in enumerate(kept):
        out += [e for e in _layer_entries(i, bool(keep[KV_HEADS])) if e.hf.endswith(".weight") or e.hf in ckpt.tensors]
    if missing := sorted({e.hf for e in out} - set(ckpt.tensors)):
        raise RysError(f"{ckpt.folder}: tensor {missing[0]} is missing")
    known = {e.hf for i in range(len(kept)) for e in _layer_entries(i, True)} | {e.hf for e in out} | {"lm_head.weight"}
    if unknown := sorted(set(ckpt.tensors) - known):
        raise RysError(f"{unknown[0]}: --per-layer has no deci tensor for it")
    return out


def _inner(hf: str) -> str:
    """model.layers.3.mlp.up_proj.weight -> mlp.up_proj.weight"""
    return hf.split(".", 3)[3]


class LayerSource:
    """Output arrays (f32, GGUF layout) made when the writer asks, in file order: one layer in memory at a time."""

    def __init__(self, job: uniform.Job, kept: list[dict[str, list[int]]], progress: Callable[[int], None] | None):
        self.job, self.kept, self.progress = job, kept, progress
        self.cuts = layer_cuts(job.arch, ATTENTION)
        self.dims = dims(SOURCE_ARCH, job.ckpt.config)
        self.index, self.tensors = None, {}

    def shape(self, e: Entry) -> tuple[int, ...]:
        shape = list(self.job.ckpt.tensors[e.hf].shape)
        cut = self.cuts[_inner(e.hf)] if e.layer is not None else None
        if cut is not None and cut.unit:
            shape[cut.axis] = len(kept_positions(cut, shape[cut.axis], self.job.old, self.kept[e.layer][cut.unit]))
        return tuple(shape)

    def array(self, e: Entry) -> np.ndarray:
        if e.layer is None:
            return e.layout.to_gguf(_f32(self.job.ckpt.read([e.hf])[e.hf]), self.dims)
        if e.layer != self.index:
            self.index, self.tensors = e.layer, self.job.ckpt.read_layer(e.layer)  # the previous layer is freed
            if self.progress:
                self.progress(1)
        keep, cut = self.kept[e.layer], self.cuts[_inner(e.hf)]
        t = cut_tensor(self.tensors.pop(_inner(e.hf)), cut, self.job.old, keep.get(cut.unit), mask=False)
        # llama's rope permutation works per head: this layer's head counts
        return e.layout.to_gguf(_f32(t), replace(self.dims, n_head=len(keep[HEADS]), n_head_kv=len(keep[KV_HEADS])))


def _f32(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).cpu().numpy()


class Lazy:
    """An array-like the GGUF writer reads when it reaches it (numpy calls __array__); its shape is known up front."""

    def __init__(self, shape: tuple[int, ...], make: Callable[[], np.ndarray]):
        self.shape, self.size, self._make = shape, math.prod(shape), make

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        x = self._make()
        if x.shape != self.shape:
            raise RuntimeError(f"planned {self.shape}, made {x.shape}")
        return x if dtype is None else x.astype(dtype, copy=False)


def rope_factors(ckpt: Checkpoint) -> np.ndarray | None:
    """llama3 rope as llama.cpp takes it (rope_freqs: each frequency's divisor), from transformers' own
    llama3 rule: the unscaled inverse frequencies over the scaled ones. None for plain rope."""
    from transformers import AutoConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    params = ckpt.config.get("rope_parameters") or ckpt.config.get("rope_scaling") or {}
    if (params.get("rope_type") or params.get("type")) != "llama3":
        return None
    config = AutoConfig.from_pretrained(ckpt.folder)
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config)
    d = dims(SOURCE_ARCH, ckpt.config).head_dim
    theta = float(params.get("rope_theta", ckpt.config.get("rope_theta", 10000.0)))
    plain = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    return (plain / scaled.double()).to(torch.float32).numpy()


# --------------------------------------------------------------------------
# Metadata: the converter's, renamed to deci, and the per-layer counts


def metadata(vocab: gguf_file.GGUFFile, job: uniform.Job, kept: list[dict[str, list[int]]]):
    """(rys's keys, the converter's keys with their GGUF types: (key, Value) renamed to deci.*)."""
    if vocab.arch != SOURCE_ARCH or vocab.get(key(gguf.Keys.LLM.BLOCK_COUNT, SOURCE_ARCH)) != len(kept):
        raise RysError(f"{vocab.path.name} is not llama.cpp's llama GGUF of this {len(kept)}-layer checkpoint")
    K, hd = gguf.Keys, job.old.head_dim
    ours = {K.General.ARCHITECTURE: DECI, K.General.FILE_TYPE: int(gguf.LlamaFileType.ALL_F32)} | {
        key(k, DECI): v for k, v in {
            K.LLM.BLOCK_COUNT: len(kept),
            K.Attention.HEAD_COUNT: [len(k[HEADS]) for k in kept],
            K.Attention.HEAD_COUNT_KV: [len(k[KV_HEADS]) for k in kept],
            K.LLM.FEED_FORWARD_LENGTH: [len(k[MLP]) for k in kept],
            K.Attention.KEY_LENGTH: hd, K.Attention.VALUE_LENGTH: hd, K.Rope.DIMENSION_COUNT: hd,
        }.items()}
    renamed = {(DECI + name[len(SOURCE_ARCH):] if name.startswith(SOURCE_ARCH + ".") else name): v
               for name, v in vocab.fields.items()}
    return ours, [(name, v) for name, v in renamed.items() if name not in ours]


# --------------------------------------------------------------------------
# The job


def run(job: uniform.Job, vocab: Path, progress: Callable[[int], None] | None = None, device=None) -> dict:
    """Score, plan, write OUT.gguf (deci) and OUT.gguf.rys_prune.json. `vocab`: llama.cpp's
    converter's llama GGUF of the same checkpoint (--vocab-only is enough). Returns the provenance."""
    start, req = time.monotonic(), job.request
    vocab_file = gguf_file.read(vocab)
    layers = list(importance(job.ckpt, job.arch, job.old, req.criterion, job.calib, req.seed, device, progress))
    kept = plan(layers, job.old, job.new, req, _attention_bias(job.ckpt))
    ours, theirs = metadata(vocab_file, job, kept)
    source, planned = LayerSource(job, kept, progress), entries(job.ckpt, kept)
    tensors = [(e.gguf, Lazy(source.shape(e), lambda e=e: source.array(e))) for e in planned]
    if (factors := rope_factors(job.ckpt)) is not None:
        tensors.insert(0, (gguf.TENSOR_NAMES[T.ROPE_FREQS] + ".weight", factors))
    n_params = sum(x.size for _, x in tensors)
    gguf_file.check_output(job.out, force=True, need_bytes=4 * n_params)  # existence was checked by prepare
    provenance = _provenance(job, kept, n_params, time.monotonic() - start)
    with atomic_path(job.out) as tmp:
        gguf_file.write_arrays(tmp, {**ours, **dict(theirs)}, tensors)
        provenance["seconds"] = round(time.monotonic() - start, 2)
        write_atomic(provenance_path(job.out), uniform.provenance_text(provenance).encode())
    return provenance


def _totals(kept: list[dict[str, list[int]]]) -> dict[str, int]:
    return {u: sum(len(k[u]) for k in kept) for u in (HEADS, KV_HEADS, MLP)}


def _provenance(job: uniform.Job, kept: list[dict[str, list[int]]], n_params: int, seconds: float) -> dict:
    req, n = job.request, len(kept)
    return {
        "source": str(job.ckpt.folder),
        "architecture": job.arch.name,
        "output": {"file": job.out.name, "architecture": DECI, "type": "F32"},
        "per_layer": True,
        "criterion": req.criterion,
        "calib": job.calib.provenance() if job.calib else None,
        "seed": req.seed,
        "multiple": req.multiple,
        "normalisation": "each score over its layer's mean, per unit kind",
        "totals": {"before": {u: n * job.old.count(u) for u in (HEADS, KV_HEADS, MLP)},
                   "budget": {u: n * job.new.count(u) for u in (HEADS, KV_HEADS, MLP)},
                   "after": _totals(kept)},
        "layers": [{"index": i, **{f"{u}_kept": k[u] for u in (HEADS, KV_HEADS, MLP)}} for i, k in enumerate(kept)],
        "params_before": sum(t.numel for t in job.ckpt.tensors.values()),
        "params_after": n_params,
        "seconds": round(seconds, 2),
    }
