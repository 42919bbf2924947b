"""`rys prune`: which units every layer keeps, and the checkpoint without the others.

prepare() does every check before any work (architecture, amounts, the
calibration file, the output folder) and works out the new counts, uniform
per layer as llama.cpp needs them (which units go may differ per layer, how
many may not). run() scores every layer (rys.checkpoint.prune.importance), keeps the best
units of each, and writes the checkpoint one layer at a time: the kept
slices only ("defrag": the tensors shrink and config.json says so), or with
mask_only the same shapes with the pruned units zeroed, for comparison.
Beside the weights: rys_prune.json, the provenance (kept source indices).

GQA: query head h reads KV head h // (n_head / n_kv). The kept KV heads are
chosen first (a KV head's score includes its query heads'), then the same
number of query heads within every kept group, so the pruned model's head
h' reads KV head h' // (n_head' / n_kv') as before. DeltaNet value heads
likewise keep the same number under every key head.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .calibration import Calibration, load_calibration
from ...core.errors import RysError
from ...core.files import atomic_folder
from ..hf.folder import Checkpoint, StreamWriter, TensorInfo, check_output, write_json
from ..hf.names import ATTENTION, DELTANET
from .importance import CRITERIA, NEEDS_CALIBRATION, LayerScores, importance
from .rules import (HEADS, KV_HEADS, MLP, V_HEADS, Arch, Geometry, arch_of, cut_shape, cut_tensor, geometry, layer_cuts, layer_kinds, pruned_config)

OPTIONS = {HEADS: "--heads", KV_HEADS: "--kv-heads", MLP: "--mlp", V_HEADS: "--deltanet-v-heads"}
PROVENANCE = "rys_prune.json"
K_QUANT_BLOCK = 256
DROPPED_PREFIXES = ("mtp.",)  # Qwen3.5's multi-token-prediction layer: not part of the causal LM


@dataclass(frozen=True)
class Amount:
    """--heads 0.25 (a fraction, 0 < F < 1) or --heads 3 (a whole number, >= 1)."""

    value: float
    fraction: bool
    text: str


def parse_amount(text: str, option: str) -> Amount:
    text = str(text).strip()
    if re.fullmatch(r"\d+", text):
        if int(text) < 1:
            raise RysError(f"{option} {text}: a number must be at least 1 (or give a fraction between 0 and 1)")
        return Amount(int(text), False, text)
    try:
        value = float(text)
    except ValueError:
        raise RysError(f"{option} {text}: give a fraction between 0 and 1 (0.25) or a whole number (3)") from None
    if not 0 < value < 1:
        raise RysError(f"{option} {text}: a fraction must be between 0 and 1, both excluded")
    return Amount(value, True, text)


@dataclass(frozen=True)
class Request:
    heads: Amount | None = None
    kv_heads: Amount | None = None
    mlp: Amount | None = None
    v_heads: Amount | None = None
    criterion: str = "activation"
    calib: Path | None = None
    calib_tokens: int = 4096
    multiple: int = 256
    seed: int = 0
    mask_only: bool = False

    def amount(self, unit: str) -> Amount | None:
        return getattr(self, unit)


# --------------------------------------------------------------------------
# Counts (uniform per layer)


def _per_group(amount: Amount | None, per: int, groups: int, option: str, what: str, group: str) -> int:
    """How many of `per` units stay in each of `groups` groups."""
    if amount is None:
        return per
    if amount.fraction:
        gone = math.floor(amount.value * per + 0.5)
        if gone == 0:
            raise RysError(f"{option} {amount.text} removes no {what}: each {group} has {per}, "
                           f"so the smallest step is 1/{per} ({1 / per:.0%})")
    else:
        if amount.value % groups:
            ok = ", ".join(str(groups * k) for k in range(1, per))
            raise RysError(f"{option} {amount.text} does not divide evenly over {groups} {group}s "
                           f"(each keeps the same number of {what}s): use one of {ok or 'none'}")
        gone = int(amount.value) // groups
    if gone >= per:
        raise RysError(f"{option} {amount.text} would leave no {what} (each {group} has {per})")
    return per - gone


def _mlp_width(amount: Amount | None, ff: int, multiple: int) -> int:
    if amount is None:
        return ff
    if multiple < 1:
        raise RysError(f"--multiple {multiple}: must be at least 1")
    if ff < multiple:
        raise RysError(f"the MLP is {ff} channels wide, below --multiple {multiple}: pass a smaller --multiple")
    if amount.fraction:
        keep = math.floor(ff * (1 - amount.value) / multiple + 0.5) * multiple
        if keep >= ff:
            raise RysError(f"--mlp {amount.text} keeps {ff * (1 - amount.value):.0f} of {ff} channels, which rounds "
                           f"to all {ff} at --multiple {multiple}: remove more, or pass a smaller --multiple")
        if keep == 0:
            raise RysError(f"--mlp {amount.text} would leave no MLP channel at --multiple {multiple}")
        return keep
    keep = int(amount.value)
    if keep >= ff:
        raise RysError(f"--mlp {keep} keeps the whole MLP ({ff} channels): give a smaller width or a fraction")
    if keep % multiple:
        near = [w for w in (keep // multiple * multiple, (keep // multiple + 1) * multiple) if 0 < w < ff]
        raise RysError(f"--mlp {keep} is not a multiple of --multiple {multiple}: use "
                       + " or ".join(map(str, near)) + ", or pass another --multiple")
    return keep


def new_geometry(arch: Arch, old: Geometry, kinds: list[str], req: Request) -> Geometry:
    """The counts every layer keeps, or RysError saying why the request cannot be met."""
    if not any(req.amount(u) for u in OPTIONS):
        raise RysError("nothing to prune: give --heads, --kv-heads, --mlp or --deltanet-v-heads")
    for unit, option in OPTIONS.items():
        if req.amount(unit) and (why := arch.refusal(unit)):
            raise RysError(f"{option} cannot prune {arch.name}: {why}")
    if (req.heads or req.kv_heads) and ATTENTION not in kinds:
        raise RysError("--heads/--kv-heads: this model has no attention layers")
    if req.v_heads and DELTANET not in kinds:
        raise RysError(f"--deltanet-v-heads: {arch.name} has no Gated DeltaNet layers")
    group = old.heads // old.kv_heads
    if req.heads and group == 1:
        raise RysError(f"--heads: each of the {old.kv_heads} KV heads has one query head; "
                       "use --kv-heads (a KV head goes with its query heads)")
    kv = _per_group(req.kv_heads, old.kv_heads, 1, "--kv-heads", "KV head", "layer")
    heads = kv * _per_group(req.heads, group, kv, "--heads", "query head", "KV group")
    v_heads = old.v_heads
    if old.k_heads:
        v_heads = old.k_heads * _per_group(req.v_heads, old.v_heads // old.k_heads, old.k_heads,
                                           "--deltanet-v-heads", "value head", "key-head group")
    return old.with_counts(dict(heads=heads, kv_heads=kv, v_heads=v_heads, mlp=_mlp_width(req.mlp, old.mlp, req.multiple)))


# --------------------------------------------------------------------------
# Which units stay


def top(scores, k: int, among: range | None = None) -> list[int]:
    """The k best indices (ties: the lower index), sorted."""
    among = among if among is not None else range(len(scores))
    return sorted(sorted(among, key=lambda i: (-float(scores[i]), i))[:k])


def grouped(scores, kept_groups: list[int], per_old: int, per_new: int) -> list[int]:
    """The best per_new units in each kept group of per_old consecutive units, sorted."""
    return [u for g in kept_groups for u in top(scores, per_new, range(g * per_old, (g + 1) * per_old))]


def choose(layer: LayerScores, old: Geometry, new: Geometry) -> dict[str, list[int] | None]:
    """Kept source indices of every unit kind of a layer (None where the layer has none)."""
    s = layer.scores
    kept: dict[str, list[int] | None] = {u: None for u in OPTIONS}
    kept[MLP] = top(s[MLP], new.mlp)
    if layer.kind == ATTENTION:
        kept[KV_HEADS] = top(s[KV_HEADS], new.kv_heads)
        kept[HEADS] = grouped(s[HEADS], kept[KV_HEADS], old.heads // old.kv_heads, new.heads // new.kv_heads)
    else:
        kept[V_HEADS] = grouped(s[V_HEADS], list(range(old.k_heads)), old.v_heads // old.k_heads,
                                new.v_heads // new.k_heads)
    return kept


# --------------------------------------------------------------------------
# The job


@dataclass
class Job:
    ckpt: Checkpoint
    arch: Arch
    kinds: list[str]
    old: Geometry
    new: Geometry
    request: Request
    out: Path
    calib: Calibration | None
    notes: list[str] = field(default_factory=list)

    def dropped(self) -> list[str]:
        return [n for n in self.ckpt.global_names() if n.startswith(DROPPED_PREFIXES)]


def check_layers(ckpt: Checkpoint, arch: Arch, kinds: list[str], old: Geometry) -> None:
    """Every layer tensor is known and its unit axis has the size config.json implies."""
    if stray := ckpt.stray_layers():
        raise RysError(f"tensors of layer {stray[0]}, but config.json has num_hidden_layers {len(kinds)}")
    for i, kind in enumerate(kinds):
        cuts, prefix = layer_cuts(arch, kind), f"model.layers.{i}."
        for name in ckpt.layer_names(i):
            cut = cuts.get(name[len(prefix):])
            if cut is None:
                raise RysError(f"{name}: rys prune does not know this {kind} layer tensor, so cannot prune it")
            info = ckpt.tensors[name]
            want = getattr(old, cut.offset) + old.count(cut.unit) * getattr(old, cut.width) if cut.unit else None
            if want is not None and (len(info.shape) <= cut.axis or info.shape[cut.axis] != want):
                raise RysError(f"{name} has shape {list(info.shape)}, but config.json implies {want} along axis {cut.axis}")


def prepare(model_dir, out, request: Request, force: bool = False, check_out=check_output) -> Job:
    """Every check before any work; the job to run. check_out(out, model folder, force)
    checks the output (a new folder here; rys.checkpoint.prune.per_layer passes its GGUF file check)."""
    out = Path(out)
    if request.criterion not in CRITERIA:
        raise RysError(f"unknown criterion '{request.criterion}' (known: {', '.join(CRITERIA)})")
    ckpt = Checkpoint(model_dir)
    arch = arch_of(ckpt.config)
    kinds = layer_kinds(arch, ckpt.config)
    old = geometry(arch, ckpt.config)
    new = new_geometry(arch, old, kinds, request)
    check_layers(ckpt, arch, kinds, old)
    check_out(out, ckpt.folder, force)
    job = Job(ckpt, arch, kinds, old, new, request, out, None)
    if request.criterion in NEEDS_CALIBRATION:
        if request.calib is None:
            raise RysError(f"--criterion {request.criterion} needs calibration text: pass --calib FILE "
                           "(plain text), or use --criterion magnitude or random")
        job.calib = load_calibration(ckpt.folder, Path(request.calib), request.calib_tokens)
    elif request.calib is not None:
        job.notes.append(f"--criterion {request.criterion} reads no calibration text: --calib ignored")
    job.notes += _notes(job)
    return job


def _notes(job: Job) -> list[str]:
    notes = []
    if job.new.mlp != job.old.mlp and job.new.mlp % K_QUANT_BLOCK:
        notes.append(f"MLP width {job.new.mlp} is not a multiple of {K_QUANT_BLOCK}: llama-quantize "
                     "falls back to another type than a K-quant for ffn_down")
    if dropped := job.dropped():
        notes.append(f"dropped {len(dropped)} MTP tensors ({dropped[0]}, ...): the causal LM does not use them")
    return notes


def _layouts(job: Job, pruned: bool) -> list[TensorInfo]:
    """Every output tensor's name, dtype, shape and file (as the input shards them)."""
    ckpt = job.ckpt
    infos = [ckpt.tensors[n] for n in ckpt.global_names() if n not in set(job.dropped())]
    for i, kind in enumerate(job.kinds):
        cuts, prefix = layer_cuts(job.arch, kind), f"model.layers.{i}."
        for name in ckpt.layer_names(i):
            info = ckpt.tensors[name]
            shape = cut_shape(cuts[name[len(prefix):]], info.shape, job.old, job.new) if pruned else info.shape
            infos.append(replace(info, shape=shape))
    return infos


def _write_weights(job: Job, folder: Path, kept: list[dict], progress) -> list[TensorInfo]:
    ckpt, mask = job.ckpt, job.request.mask_only
    layout = _layouts(job, pruned=not mask)
    writer = StreamWriter(folder, layout, with_index=ckpt.weight_map is not None)
    try:
        for name in [t.name for t in layout if not t.name.startswith("model.layers.")]:
            writer.write(name, ckpt.read([name])[name])
        for i, kind in enumerate(job.kinds):
            cuts, tensors = layer_cuts(job.arch, kind), ckpt.read_layer(i)
            while tensors:  # each tensor freed once written
                name, t = tensors.popitem()
                cut = cuts[name]
                writer.write(f"model.layers.{i}.{name}", cut_tensor(t, cut, job.old, kept[i].get(cut.unit), mask))
                del t
            if progress:
                progress(1)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return layout


def run(job: Job, progress: Callable[[int], None] | None = None, device=None) -> dict:
    """Score, choose, write. Returns the provenance (also written as rys_prune.json)."""
    start = time.monotonic()
    req = job.request
    kept = [choose(scores, job.old, job.new)
            for scores in importance(job.ckpt, job.arch, job.old, req.criterion, job.calib, req.seed, device, progress)]
    with atomic_folder(job.out) as folder:
        _write_weights(job, folder, kept, progress)
        config = dict(job.ckpt.config) if req.mask_only else pruned_config(job.ckpt.config, job.old, job.new)
        if job.dropped() and "mtp_num_hidden_layers" in config:
            config["mtp_num_hidden_layers"] = 0
        write_json(folder / "config.json", config)
        for path in job.ckpt.other_files():
            shutil.copy2(path, folder / path.name)
        provenance = _provenance(job, kept, time.monotonic() - start)
        (folder / PROVENANCE).write_text(provenance_text(provenance))
    return provenance


def provenance_text(provenance: dict) -> str:
    """JSON with every list of indices on one line (a 4B model keeps ~7,000 channels per layer)."""
    text = json.dumps(provenance, indent=2)
    return re.sub(r"\[\s*\d+(?:,\s*\d+)*\s*\]", lambda m: "[" + ", ".join(re.findall(r"\d+", m.group(0))) + "]", text) + "\n"


def _provenance(job: Job, kept: list[dict], seconds: float) -> dict:
    req = job.request
    counts = ("heads", "kv_heads", "mlp", "v_heads")
    return {
        "source": str(job.ckpt.folder),
        "architecture": job.arch.name,
        "criterion": req.criterion,
        "calib": job.calib.provenance() if job.calib else None,
        "seed": req.seed,
        "multiple": req.multiple,
        "mask_only": req.mask_only,
        "counts": {"before": {c: job.old.count(c) for c in counts}, "after": {c: job.new.count(c) for c in counts}},
        "layers": [{"index": i, "kind": kind, **{f"{u}_kept": k[u] for u in OPTIONS}}
                   for i, (kind, k) in enumerate(zip(job.kinds, kept))],
        "params_before": sum(t.numel for t in job.ckpt.tensors.values()),
        "params_after": sum(t.numel for t in _layouts(job, pruned=True)),
        "dropped": job.dropped(),
        "seconds": round(seconds, 2),
    }
