"""Rewrite a GGUF so that its forward pass follows a layer path.

Each new layer k is a physical copy of source layer path[k] (llama.cpp needs
contiguous, non-shared tensor data), renamed to blk.k.*. Every per-layer
metadata array is re-indexed along the path, and layer kinds that llama.cpp
derives from a scalar are either kept (when the path preserves them) or
spelled out as a per-layer array. Before anything is written the planned
file is typed the way llama.cpp will type it and compared with the source.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import gguf

from .. import __version__
from ..core import keys
from . import spec as specs
from ..core.errors import RysError
from ..core.gguf_file import Placement, Value, atomic_output, check_output, data_size, write
from ..core.model import BLOCK_RE, Model, check_known, infer_kinds, load

LAYOUTS = ("auto", "interval", "explicit")
T = gguf.GGUFValueType


@dataclass
class Plan:
    model: Model
    spec_text: str
    label: str
    trunk_path: list[int]  # source trunk layer of each new trunk layer
    fields: dict[str, Value]
    placements: list[Placement]
    notes: list[str] = field(default_factory=list)

    @property
    def full_path(self) -> list[int]:
        m = self.model
        return self.trunk_path + list(range(m.n_trunk, m.n_layer_all))

    @property
    def n_bytes(self) -> int:
        return data_size(self.placements, self.model.file.alignment)


@dataclass
class BuildResult:
    out: Path
    plan: Plan
    seconds: float = 0.0


def default_output(src: Path, label: str) -> Path:
    return src.with_name(f"{src.stem}-{label}.gguf")


def make_plan(model: Model, spec_text: str, layout: str = "auto") -> Plan:
    """Everything about the output except the bytes. Raises RysError when the
    path cannot be expressed (see --layout)."""
    if layout not in LAYOUTS:
        raise RysError(f"unknown layout '{layout}': choose one of {', '.join(LAYOUTS)}")
    check_known(model)
    spec = specs.parse(spec_text)
    trunk_path = specs.layer_path(spec, model.n_trunk)
    if not trunk_path:
        raise RysError("the layer path is empty")
    p = Plan(model, spec_text, spec.label, trunk_path, {}, [])
    p.fields = _fields(p, layout)
    _check_kinds(p, spec, layout)
    p.placements = _placements(p)
    return p


def _fields(p: Plan, layout: str) -> dict[str, Value]:
    m = p.model
    full = p.full_path
    n_new = len(full)
    out: dict[str, Value] = {}
    for key, val in m.file.fields.items():
        if key in m.per_layer_arrays:
            src = val.value
            path = full if len(src) == m.n_layer_all else p.trunk_path
            val = Value([src[i] for i in path], val.vtype, val.sub_type)
        out[key] = val
    bc = m.key(gguf.Keys.LLM.BLOCK_COUNT)
    out[bc] = Value(n_new, m.file.fields[bc].vtype)
    for info in m.kind_infos:
        rule = info.rule
        if info.source != "scalar" or rule is None or rule.array_key is None:
            continue
        keep_scalar = infer_kinds(m.arch, out, n_new, m.n_extra)
        if layout == "explicit" or (layout == "auto" and not _kinds_follow(p, info, keep_scalar)):
            flags = [info.kinds[i] == rule.kinds[0] for i in full]
            out[m.key(rule.array_key)] = Value(flags, T.ARRAY, T.BOOL)
            if layout == "auto":
                p.notes.append(f"wrote per-layer {m.key(rule.array_key)}: the path does not keep the "
                               f"{rule.what} {info.period} of {m.key(rule.scalar_key)}")
    _provenance(p, out)
    return out


def _kinds_follow(p: Plan, src_info, out_infos) -> bool:
    """Does the rule behind src_info type every new layer as its source layer?"""
    for info in out_infos:
        if info.rule is src_info.rule:
            return all(info.kinds[k] == src_info.kinds[i] for k, i in enumerate(p.full_path))
    return False


def _check_kinds(p: Plan, spec: specs.Spec, layout: str) -> None:
    m = p.model
    out_infos = infer_kinds(m.arch, p.fields, len(p.full_path), m.n_extra)
    src_kinds, out_kinds = m.kinds(), _joined(out_infos, len(p.full_path))
    for k, i in enumerate(p.full_path):
        if out_kinds[k] == src_kinds[i]:
            continue
        info = next((x for x in m.kind_infos if x.source == "scalar"), None)
        what = f"{m.key(info.rule.scalar_key)} = {info.period}" if info else "the layer kinds"
        msg = (f"{'path' if spec.is_path else 'block'} {p.spec_text} would make new layer {k} (source layer {i}) {out_kinds[k]} "
               f"instead of {src_kinds[i]} under {what}")
        if info and len(spec.blocks) == 1:
            near = _nearest_blocks(m, spec.blocks[0])
            if near:
                msg += f"; nearest blocks that keep it: {', '.join(f'{a}-{b}' for a, b in near)}"
        if info and info.rule.array_key and layout == "interval":
            msg += "; or use --layout explicit"
        raise RysError(msg)


def _joined(infos, n: int) -> list[str]:
    if not infos:
        return ["block"] * n
    return ["+".join(k) for k in zip(*(info.kinds for info in infos))]


def _nearest_blocks(m: Model, block: tuple[int, int], count: int = 3) -> list[tuple[int, int]]:
    """Blocks closest to `block` whose duplication keeps every kind with the scalar as it is."""
    src_kinds = m.kinds()
    found = []
    for a in range(m.n_trunk):
        for b in range(a, m.n_trunk):
            path = specs.layer_path(specs.Spec("", ((a, b),), ()), m.n_trunk) + list(range(m.n_trunk, m.n_layer_all))
            fields = dict(m.file.fields)
            fields[m.key(gguf.Keys.LLM.BLOCK_COUNT)] = Value(len(path), T.UINT32)
            kinds = _joined(infer_kinds(m.arch, fields, len(path), m.n_extra), len(path))
            if all(kinds[k] == src_kinds[i] for k, i in enumerate(path)):
                found.append((abs(a - block[0]) + abs(b - block[1]), a, b))
    return [(a, b) for _, a, b in sorted(found)[:count]]


def _provenance(p: Plan, out: dict[str, Value]) -> None:
    m = p.model
    src = m.file
    path = p.full_path
    name = src.get(keys.SOURCE_NAME, src.path.name)
    size = src.get(keys.SOURCE_SIZE, src.size)
    earlier = src.get(keys.LAYER_PATH)
    if earlier is not None:  # the input was itself rewritten: keep indices of the original model
        path = [earlier[i] for i in path]
    out[keys.LAYER_PATH] = Value(path, T.ARRAY, T.INT32)
    out[keys.SPEC] = Value(p.spec_text, T.STRING)
    out[keys.SOURCE_NAME] = Value(str(name), T.STRING)
    out[keys.SOURCE_SIZE] = Value(int(size), T.UINT64)
    out[keys.VERSION] = Value(__version__, T.STRING)
    base = src.get(gguf.Keys.General.NAME) or src.path.stem
    out[gguf.Keys.General.NAME] = Value(f"{base}-{p.label}", T.STRING)


def _placements(p: Plan) -> list[Placement]:
    """Output tensors in file order (the order llama.cpp needs is only that of
    the offsets, names may come in any order): every source tensor the path
    uses, in source order under its new name, then the extra copies of
    repeated layers. The bulk of the file is then one run of bytes in the
    same order as the source, which copies fastest (and can be a reflink)."""
    m = p.model
    first: dict[int, int] = {}
    repeats: list[tuple[int, int]] = []  # (new index, source layer)
    for k, i in enumerate(p.full_path):
        if i in first:
            repeats.append((k, i))
        else:
            first[i] = k
    out = []
    for t in m.file.tensors:
        match = BLOCK_RE.match(t.name)
        if match is None:
            out.append(Placement(t.name, t))
        elif int(match.group(1)) in first:
            out.append(Placement(f"blk.{first[int(match.group(1))]}.{match.group(2)}", t))
    for k, i in repeats:
        out.extend(Placement(f"blk.{k}.{BLOCK_RE.match(t.name).group(2)}", t) for t in m.layers[i])
    return out


def prepare(src, spec_text: str, out=None, layout: str = "auto", force: bool = False) -> tuple[Plan, Path]:
    """Plan the rewrite and check the output location; writes nothing."""
    model = load(src)
    p = make_plan(model, spec_text, layout)
    out = Path(out) if out else default_output(model.path, p.label)
    if out.exists() and out.resolve() == model.path.resolve():
        raise RysError(f"{out} is the input file; choose another output with -o")
    check_output(out, force, _need_bytes(p))
    return p, out


def _need_bytes(p: Plan) -> int:
    header_guess = p.model.file.tensors[0].offset if p.model.file.tensors else 1 << 20
    return p.n_bytes + header_guess


def write_plan(p: Plan, out: Path, force: bool = False, progress: Callable[[int], None] | None = None) -> BuildResult:
    """Write the planned file atomically (temporary file, fsync, rename)."""
    start = time.perf_counter()
    with atomic_output(out, force, _need_bytes(p)) as tmp:
        write(tmp, p.model.file, p.fields, p.placements, progress)
    return BuildResult(out, p, time.perf_counter() - start)


def build(src, spec_text: str, out=None, layout: str = "auto", force: bool = False,
          progress: Callable[[int], None] | None = None) -> BuildResult:
    """Plan and write in one call; returns where and what was written."""
    p, out = prepare(src, spec_text, out, layout, force)
    return write_plan(p, out, force, progress)
