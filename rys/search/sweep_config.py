"""The options of a sweep, and which of them decide what a score means.

Two sets of scores are comparable only when they agree on every scoring key:
a resumed sweep refuses a folder that differs in one (rys.search.sweep), and
`rys rank` refuses to merge such folders (rys.search.results). The keys are named
here once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class SweepConfig:
    model: str
    block: int = 8
    stride: int = 4
    start: int = 0
    end: int | None = None
    blocks: str | None = None  # explicit list "27-30,28-31" instead of block/stride
    suite: str = "math,eq,reasoning"
    limit: int = 16
    holdout: int = 0  # extra items per suite, never used by the search, for the top candidates
    holdout_top: int = 3
    seed: int = 0
    mode: str = "generate"
    eq_revise: bool = False  # EQ asked with critique and revision (EQ-Bench v2.0) instead of v2.1's ratings alone
    layout: str = "auto"
    concurrency: int = 4
    prefilter: str | None = None  # "kl"
    kl_threshold: float = 1.0
    halving: bool = False
    shard: str | None = None  # "K/N"
    keep_models: bool = False
    server_bin: str | None = None
    threads: int | None = None
    ctx: int | None = None
    timeout: float = 300.0
    preset: str | None = None  # the preset the options came from (recorded, not a scoring key)

    def scoring_identity(self) -> dict:
        """The scoring keys and their values (stored in every result folder)."""
        return {k: getattr(self, k) for k in SCORING_KEYS}


# Options that change what a score means. Concurrency is one: greedy outputs
# differ between one server slot and several (llama.cpp's batched kernels round
# differently). A folder written before a key existed had its default.
SCORING_KEYS = ("suite", "limit", "holdout", "seed", "mode", "eq_revise", "layout", "concurrency")
SCORING_DEFAULTS = {f.name: f.default for f in fields(SweepConfig) if f.name in SCORING_KEYS}


def scoring_differences(a: dict | None, b: dict | None) -> list[tuple[str, object, object]]:
    """(key, value in a, value in b) for every scoring key on which two
    recorded configs differ; a key a config lacks counts as its default."""
    out = []
    for key in SCORING_KEYS:
        va, vb = ((c or {}).get(key, SCORING_DEFAULTS[key]) for c in (a, b))
        if va != vb:
            out.append((key, va, vb))
    return out


def option_name(key: str) -> str:
    """The command-line spelling of a config key: eq_revise -> --eq-revise."""
    return "--" + key.replace("_", "-")
