"""Synthetic sweep result stores with answers known by hand (for test_rank, test_report).

An 8-layer model; the baseline and four candidates scored on math (partial
credit, two suites pooled), reasoning (exact, one suite) and EQ-Bench:

              math (6 items)      reasoning (4)    eq (3 items, revised pass)
  baseline    sum 2.6             2 right          revised 6, 7, 5  -> 60.0
  0-3 (+4)    sum 3.5, every      3 right          every item +1    -> 70.0
              item higher
  2-5 (+4)    = baseline          = baseline       = baseline
  4-7 (+4)    sum 1.8, every      1 right          every item -1    -> 50.0
              item lower
  2-3 (+2)    sum 2.8, mixed      3 right          = baseline

plus 6-7 failed, 1-2 skipped and 3-4 pruned (not measured).
"""

from __future__ import annotations

from pathlib import Path

from rys.search.results import CandidateRecord, Store

N_LAYERS = 8
MODEL = {"file": "tiny.gguf", "path": "/models/tiny.gguf", "size": 10_000, "header_sha256": "ab12",
         "block_count": N_LAYERS, "layer_bytes": [1000] * N_LAYERS}
CONFIG = {"model": "/models/tiny.gguf", "suite": "math,eq,reasoning", "limit": 4, "seed": 0,
          "mode": "generate", "block": 4, "stride": 2, "out": "sweeps/tiny"}

ARITH = {"baseline": [0.2, 0.4, 0.6, 0.8], "0-3": [0.3, 0.5, 0.9, 0.9], "2-5": [0.2, 0.4, 0.6, 0.8],
         "4-7": [0.1, 0.2, 0.5, 0.6], "2-3": [0.3, 0.3, 0.6, 0.9]}
WORD = {"baseline": [0.5, 0.1], "0-3": [0.6, 0.3], "2-5": [0.5, 0.1], "4-7": [0.4, 0.0], "2-3": [0.5, 0.2]}
DATE = {"baseline": [1, 0, 1, 0], "0-3": [1, 1, 1, 0], "2-5": [1, 0, 1, 0], "4-7": [0, 0, 1, 0], "2-3": [1, 0, 1, 1]}
EQ = {"baseline": [(5, 6), (7, 7), (4, 5)], "0-3": [(6, 7), (8, 8), (5, 6)], "2-5": [(5, 6), (7, 7), (4, 5)],
      "4-7": [(4, 5), (6, 6), (3, 4)], "2-3": [(5, 6), (7, 7), (4, 5)]}
UNMEASURED = {"6-7": ("failed", "llama-server exited: out of memory"),
              "1-2": ("skipped", "block 1-2 changes layer kinds; --layout interval cannot express it"),
              "3-4": ("pruned", "KL 0.91 > 0.5 from baseline")}

# Deltas vs baseline by hand (the sums above over the item counts).
DELTAS = {"0-3": {"math": 0.9 / 6, "eq": 10.0, "reasoning": 0.25},
          "2-5": {"math": 0.0, "eq": 0.0, "reasoning": 0.0},
          "4-7": {"math": -0.8 / 6, "eq": -10.0, "reasoning": -0.25},
          "2-3": {"math": 0.2 / 6, "eq": 0.0, "reasoning": 0.25}}
SCORES = {"baseline": {"math": 2.6 / 6, "eq": 60.0, "reasoning": 0.5}}


def row(suite: str, i, score, scoring: str, parseable: bool = True) -> dict:
    return {"suite": suite, "id": str(i), "score": float(score), "parseable": parseable, "scoring": scoring,
            "completion_tokens": 5, "latency": 0.1, "error": None}


def eq_row(i, first, revised) -> dict:
    best = revised if revised is not None else first
    return {**row("eq", i, 0, "eqbench", best is not None), "score": None if best is None else 10 * best,
            "first": first, "revised": revised}


def rows_of(name: str) -> list[dict]:
    return ([row("math.arith", i, s, "partial") for i, s in enumerate(ARITH[name])]
            + [row("math.word", i, s, "partial") for i, s in enumerate(WORD[name])]
            + [row("reasoning.date", i, s, "exact") for i, s in enumerate(DATE[name])]
            + [eq_row(i, f, r) for i, (f, r) in enumerate(EQ[name])])


def block_path(name: str) -> list[int]:
    if name == "baseline":
        return list(range(N_LAYERS))
    i, j = map(int, name.split("-"))
    return list(range(j + 1)) + list(range(i, N_LAYERS))


def candidate(name: str, status: str = "ok", reason: str | None = None) -> CandidateRecord:
    path = block_path(name)
    return CandidateRecord(name, status, len(path) - N_LAYERS, "" if name == "baseline" else name,
                     path if status == "ok" else [], reason)


def new_store(folder: Path, model: dict | None = MODEL, config: dict | None = CONFIG) -> Store:
    store = Store(folder)
    if model is not None:
        store.set_meta("model", model)
    if config is not None:
        store.set_meta("config", config)
    return store


def add(store: Store, name: str, rows: list[dict] | None = None, stage: str = "search") -> None:
    store.put_candidate(candidate(name))
    for r in rows_of(name) if rows is None else rows:
        store.put_item(name, stage, r)


def add_unmeasured(store: Store, names=tuple(UNMEASURED)) -> None:
    for name in names:
        store.put_candidate(candidate(name, *UNMEASURED[name]))


def write_sweep(folder: Path, names=tuple(ARITH), unmeasured=tuple(UNMEASURED), model=MODEL,
                config=CONFIG) -> Path:
    """The table above (or the named part of it) in one result folder."""
    with new_store(folder, model, config) as store:
        for name in names:
            add(store, name)
        add_unmeasured(store, unmeasured)
    return folder
