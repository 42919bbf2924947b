"""Which candidates a sweep measures: the baseline, then one duplicated block
each (--block/--stride/--start/--end, or an explicit --blocks list), cut to
one shard; and the identity of the model they are built from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..surgery import spec as specs
from ..core.errors import RysError
from ..core.model import Model
from .results import BASELINE
from ..surgery.rewrite import Plan, make_plan
from .sweep_config import SweepConfig


@dataclass
class Candidate:
    """A candidate with its layer path, and the plan to write it (None for the
    baseline, and for a block the rewriter cannot express: see skip_reason)."""

    name: str
    spec: str
    plan: Plan | None
    layers_added: int
    path: list[int]
    skip_reason: str | None = None


def model_identity(m: Model) -> dict:
    """Name, size and a hash of the header and metadata (cheap on multi-GB files)."""
    head = m.file.tensors[0].offset if m.file.tensors else m.file.size
    h = hashlib.sha256()
    with open(m.path, "rb") as fh:
        h.update(fh.read(min(head, 64 << 20)))
    return {"file": m.path.name, "size": m.file.size, "header_sha256": h.hexdigest(), "arch": m.arch,
            "layers": m.n_trunk, "extra_layers": m.n_extra,
            "layer_bytes": [m.layer_bytes(i) for i in range(m.n_trunk)]}


def block_specs(n_trunk: int, block: int, stride: int, start: int = 0, end: int | None = None) -> list[str]:
    """Blocks of `block` layers starting at start, start+stride, ... that end before `end` (exclusive)."""
    end = n_trunk if end is None else end
    if block < 1 or stride < 1:
        raise RysError("--block and --stride must be at least 1")
    if not 0 <= start < end <= n_trunk:
        raise RysError(f"--start {start} / --end {end} do not fit a model of {n_trunk} layers (0-{n_trunk})")
    if start + block > end:
        raise RysError(f"no block of {block} layers fits between layer {start} and {end}")
    return [f"{i}-{i + block - 1}" for i in range(start, end - block + 1, stride)]


def shard_of(names: list[str], shard: str | None) -> list[str]:
    """Candidates of shard K/N: every N-th candidate from the K-th, in list order."""
    if not shard:
        return names
    try:
        k, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise RysError(f"--shard takes K/N, like 1/3; got {shard!r}") from None
    if not 1 <= k <= n:
        raise RysError(f"--shard {shard}: K must be between 1 and N")
    return [c for i, c in enumerate(names) if i % n == k - 1]


def _block_of(text: str) -> tuple[int, int]:
    block = specs.single_block(text)
    if block is None:
        specs.parse(text)  # a malformed block says what is wrong with it
        raise RysError(f"--blocks takes single blocks like 27-30, got {text!r}")
    return block


def candidates(m: Model, cfg: SweepConfig) -> list[Candidate]:
    """The baseline, then every block of the sweep (those it cannot build carry their reason)."""
    if cfg.blocks:
        texts = [s.strip() for s in cfg.blocks.split(",") if s.strip()]
        if not texts:
            raise RysError("--blocks is empty")
    else:
        texts = block_specs(m.n_trunk, cfg.block, cfg.stride, cfg.start, cfg.end)
    out = [Candidate(BASELINE, "", None, 0, list(range(m.n_trunk)))]
    for text in shard_of(texts, cfg.shard):
        a, b = _block_of(text)
        name = f"{a}-{b}"
        try:
            p = make_plan(m, text, cfg.layout)
        except RysError as exc:
            out.append(Candidate(name, text, None, b - a + 1, [], skip_reason=str(exc)))
            continue
        out.append(Candidate(name, text, p, len(p.trunk_path) - m.n_trunk, p.trunk_path))
    return out
