"""Ranking the candidates of a sweep as dnhkng/RYS does, with error bars.

Input: one or more sweep folders (shards of one sweep, merged by
rys.search.results). Output: a Ranking, one row per candidate in display order
(baseline, ranked, not ranked) with the numbers of rys.search.stats per probe group
(and per suite on request), the best candidate per unit and the Pareto front
of the ranking column vs layers added (both from the candidates measured on
the most items), and a hold-out view: the same numbers on items of stage
"holdout", which the search never saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .bootstrap import N_BOOT
from .results import BASELINE, Results, read
from .stats import ordered, pareto_front, scores


@dataclass
class Ranking:
    table: pd.DataFrame  # one row per candidate in display order: baseline, ranked, not ranked
    by: str
    groups: list[str]  # probe groups, summed into `combined`
    suites: list[str]  # individual suites shown as well (rank(..., suites=True))
    scales: dict[str, int]  # unit -> 100 for EQ-Bench scores, else 1
    best: dict[str, str]  # unit -> the ok candidate with the highest delta
    pareto: list[str]  # candidates on the front of `by` vs layers added, by layers
    holdout: list[str]  # units with hold-out items (columns holdout_{unit}*)
    results: Results

    @property
    def notes(self) -> list[str]:
        return self.results.notes

    @property
    def units(self) -> list[str]:
        return self.groups + self.suites

    @property
    def ranked(self) -> pd.DataFrame:
        return self.table[self.table["rank"].notna()]

    @property
    def unranked(self) -> pd.DataFrame:
        return self.table[self.table["status"] != "ok"]

    def to_records(self) -> list[dict]:
        """JSON-ready rows: NaN as None, numpy scalars as Python numbers."""
        return [{k: plain(v) for k, v in row.items()} for row in self.table.to_dict("records")]


def plain(v):
    if v is pd.NA or v is None:
        return None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else float(v)
    return v


def _best(t: pd.DataFrame, units: list[str]) -> dict[str, str]:
    """unit -> the candidate with the highest delta (ties: fewer layers added, then name)."""
    best = {}
    for u in units:
        d = t[f"{u}_delta"].dropna()
        if len(d):
            best[u] = min(d.index, key=lambda c: (-d[c], t.at[c, "layers_added"], c))
    return best


def rank(folders: list[Path], by: str = "combined", *, suites: bool = False, seed: int = 0,
         n_boot: int = N_BOOT) -> Ranking:
    """Merge the result folders and rank their candidates (see the module docstring)."""
    results = read(folders)
    s = scores(results, by, with_suites=suites, seed=seed, n_boot=n_boot)
    t, units = s.table, s.groups + s.suites
    on_front = s.full | (t.index == BASELINE)
    front = pareto_front(t.loc[on_front, s.by_col], t.loc[on_front, "layers_added"])
    t["pareto"] = t.index.isin(front)
    best = _best(t[s.full & (t.index != BASELINE)], units)
    t = ordered(s).reset_index(drop=True)
    holdout = [u for u in units if f"holdout_{u}" in t]
    return Ranking(_tidy(t, units, holdout), by, s.groups, s.suites, s.scales, best, front, holdout, results)


def _tidy(t: pd.DataFrame, units: list[str], holdout: list[str]) -> pd.DataFrame:
    """Columns in reading order (each unit's numbers together), counts as integers."""
    stats = ["", "_n", "_parse", "_delta", "_ci_low", "_ci_high", "_sig", "_z"]
    cols = ["candidate", "status", "rank", "layers_added", "layers", "spec", "combined", "pareto"]
    cols += [f"{u}{s}" for u in units for s in stats if f"{u}{s}" in t]
    cols += [f"holdout_{u}{s}" for u in holdout for s in stats if f"holdout_{u}{s}" in t]
    t = t[cols + ["reason"]].copy()
    for c in ["rank", "layers"] + [c for c in cols if c.endswith("_n")]:
        t[c] = t[c].astype("Int64")
    return t
