"""The statistics of a sweep: per-unit scores and paired deltas, z-scores,
the combined score, the order of the candidates, the Pareto front, and the
halving leaders.

A unit is a probe group (math, eq, reasoning: the aliases of rys.search.suites that
have items) or one suite. For each unit and candidate: score, n and parse
rate (rys.search.scorers.suite_score over the candidate's items); the delta vs the
baseline over the items both answered, with a paired bootstrap 95% interval
(rys.search.bootstrap, seeded per candidate, unit and stage so that the numbers do
not depend on shard order) and `sig` where the interval excludes zero; z, the
z-score of the delta across the ok candidates (baseline excluded from the
mean and standard deviation); `combined`, the sum of z over groups.

A candidate scored on more search items ranks above one scored on fewer
(successive halving drops candidates after a few items, and a few lucky items
must not outrank a survivor measured on all of them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .bootstrap import N_BOOT, crc, paired_delta
from ..core.errors import RysError
from .results import BASELINE, HOLDOUT, SEARCH, Results
from .scorers import scale, suite_score
from .suites import ALIASES


def unit_scoring(rows: pd.DataFrame, unit: str) -> str:
    """The scoring kind to pool a unit's items with: EQ-Bench scores are not plain means."""
    kinds = set(rows["scoring"])
    if "eqbench" in kinds and len(kinds) > 1:
        raise RysError(f"probe group {unit} mixes EQ-Bench and other scorings; rank with per-suite groups")
    return sorted(kinds)[0]


def unit_stats(items: pd.DataFrame, unit: str, scoring: str, candidates: list[str], seed: int,
               n_boot: int, stage: str) -> dict[str, dict]:
    """candidate -> {score, n, parse, delta, ci_low, ci_high, sig} for one unit's items."""
    by_cand = {c: dict(zip(zip(g["suite"], g["id"]), g["row"])) for c, g in items.groupby("candidate")}
    base = by_cand.get(BASELINE, {})
    out = {}
    for cand in candidates:
        mine = by_cand.get(cand)
        if not mine:
            continue
        score, parse = suite_score(scoring, list(mine.values()))
        stats = {"": score, "n": len(mine), "parse": parse}
        paired = sorted(set(mine) & set(base))  # sorted: the resamples must not depend on row order
        if cand == BASELINE:
            stats.update(delta=0.0, ci_low=0.0, ci_high=0.0)
        elif paired:
            d, lo, hi = paired_delta(scoring, [mine[k] for k in paired], [base[k] for k in paired],
                                     [seed, crc(cand), crc(unit), crc(stage)], n_boot)
            stats.update(delta=d, ci_low=lo, ci_high=hi, n_paired=len(paired))
        else:
            stats.update(delta=np.nan, ci_low=np.nan, ci_high=np.nan)
        stats["sig"] = bool(stats["ci_low"] > 0 or stats["ci_high"] < 0)
        out[cand] = stats
    return out


def zscores(deltas: pd.Series, baseline: str = BASELINE) -> pd.Series:
    """z of each delta, with mean and population standard deviation (ddof=0)
    taken over the candidates only; all 0 when the deltas do not vary."""
    pool = deltas.drop(baseline, errors="ignore").dropna()
    sd = float(pool.std(ddof=0)) if len(pool) else 0.0
    if not sd > 0:
        return deltas.where(deltas.isna(), 0.0)
    return (deltas - pool.mean()) / sd


def pareto_front(value: pd.Series, layers: pd.Series) -> list[str]:
    """Names on the front: no other has >= value with <= layers and one of them strictly."""
    ok = value.dropna().index
    front = []
    for a in ok:
        dominated = any(value[b] >= value[a] and layers[b] <= layers[a] and
                        (value[b] > value[a] or layers[b] < layers[a]) for b in ok if b != a)
        if not dominated:
            front.append(a)
    return sorted(front, key=lambda c: (layers[c], -value[c], c))


# -- the table of scores ------------------------------------------------------------

@dataclass
class Scores:
    """Every candidate's numbers, one row each (index: candidate name)."""

    table: pd.DataFrame
    by_col: str  # the column candidates are ordered by
    groups: list[str]  # probe groups, summed into `combined`
    suites: list[str]  # individual suites shown as well
    scales: dict[str, int]  # unit -> 100 for EQ-Bench scores, else 1
    full: np.ndarray  # rows measured on the most search items (those that may be best or on the front)


def _units(items: pd.DataFrame, with_suites: bool) -> tuple[list[str], list[str]]:
    present = set(items["group"])
    groups = [g for g in ALIASES if g in present] + sorted(present - set(ALIASES))
    suites = sorted(set(items["suite"]) - set(groups)) if with_suites else []
    return groups, suites


def _stage_columns(results: Results, stage_items: pd.DataFrame, units: list[str], groups: list[str],
                   names: list[str], seed: int, n_boot: int, prefix: str) -> tuple[dict, dict[str, int]]:
    cols: dict[str, dict] = {}
    scales = {}
    for unit in units:
        rows = stage_items[stage_items["group"] == unit] if unit in groups else \
            stage_items[stage_items["suite"] == unit]
        if rows.empty:
            continue
        scoring = unit_scoring(rows, unit)
        scales[unit] = scale(scoring)
        stats = unit_stats(rows, unit, scoring, names, seed, n_boot, prefix or SEARCH)
        for cand, st in stats.items():
            n_paired = st.pop("n_paired", st["n"])
            if n_paired < st["n"]:
                results.notes.append(f"{cand}: {prefix}{unit} delta over {n_paired} of {st['n']} items "
                                     "(those the baseline answered too)")
            for k, v in st.items():
                cols.setdefault(f"{prefix}{unit}{'_' + k if k else ''}", {})[cand] = v
    return cols, scales


def _base_frame(results: Results) -> pd.DataFrame:
    # sorted by name: sums over candidates then do not depend on the order of the folders
    cands = sorted(results.candidates.values(), key=lambda c: c.candidate)
    return pd.DataFrame({
        "candidate": [c.candidate for c in cands],
        "status": [c.status for c in cands],
        "layers_added": [c.layers_added for c in cands],
        "layers": [len(c.path) if c.path else None for c in cands],
        "spec": [c.spec for c in cands],
        "reason": [c.reason for c in cands],
    }).set_index("candidate", drop=False)


def _add_combined(t: pd.DataFrame, groups: list[str], measured: np.ndarray, notes: list[str]) -> None:
    """Columns {group}_z and combined (their sum) for the measured rows."""
    for g in groups:
        t.loc[measured, f"{g}_z"] = zscores(t.loc[measured, f"{g}_delta"])
        if t.loc[measured & (t.index != BASELINE), f"{g}_delta"].nunique() < 2:
            notes.append(f"the candidates' {g} deltas do not vary, so their {g} z-scores are 0")
    # NaN when a group has no delta, so such a candidate sinks instead of gaining
    t["combined"] = t[[f"{g}_z" for g in groups]].sum(axis=1, min_count=len(groups)).where(measured)


def scores(results: Results, by: str = "combined", *, with_suites: bool = False, seed: int = 0,
           n_boot: int = N_BOOT) -> Scores:
    """Every candidate's scores, deltas, z-scores and combined score, search and hold-out."""
    search, held = results.stage(SEARCH), results.stage(HOLDOUT)
    if search.empty:
        raise RysError(f"no scored items in {', '.join(map(str, results.folders))}")
    groups, suite_units = _units(search, with_suites or by in set(search["suite"]))
    choices = ["combined"] + groups + suite_units
    if by not in choices:
        raise RysError(f"cannot rank by {by!r}: choose from {', '.join(choices)}")
    t = _base_frame(results)
    names = [BASELINE] + [n for n in t.index if n != BASELINE and t.at[n, "status"] == "ok"]
    units = groups + suite_units
    cols, scales = _stage_columns(results, search, units, groups, names, seed, n_boot, "")
    hcols, _ = _stage_columns(results, held, units, groups, names, seed, n_boot, "holdout_")
    t = pd.concat([t, pd.DataFrame(cols), pd.DataFrame(hcols)], axis=1)
    measured = t.index.isin(names)
    _add_combined(t, groups, measured, results.notes)
    t["_depth"] = search.groupby("candidate").size().reindex(t.index).fillna(0).astype(int)
    full = measured & (t["_depth"] >= t.loc[measured & (t.index != BASELINE), "_depth"].max())
    n_short = int((measured & ~full & (t.index != BASELINE)).sum())
    if n_short:
        results.notes.append(f"{n_short} candidates were scored on fewer search items than the rest "
                             "(successive halving or an unfinished run): they rank after those measured "
                             "on the most items and are left out of the best per group and the Pareto front")
    by_col = "combined" if by == "combined" else f"{by}_delta"
    return Scores(t, by_col, groups, suite_units, scales, full)


def ordered(s: Scores) -> pd.DataFrame:
    """Baseline first, then ok candidates (column rank 1, 2, ...) by search
    items scored, then by `by` (descending, NaN last, fewer layers first on
    ties), then the rest by status and name."""
    t = s.table
    ok = t[(t["status"] == "ok") & (t.index != BASELINE)].copy()
    ok["_v"] = ok[s.by_col].fillna(-np.inf)
    ok = ok.sort_values(["_depth", "_v", "layers_added", "candidate"],
                        ascending=[False, False, True, True]).drop(columns="_v")
    ok["rank"] = range(1, len(ok) + 1)
    rest = t[(t["status"] != "ok")].assign(rank=np.nan).sort_values(["status", "candidate"])
    return pd.concat([t.loc[[BASELINE]].assign(rank=np.nan), ok, rest])


def leaders(results: Results, names: list[str]) -> list[str]:
    """`names` ordered best first by the combined score, as `rys rank` orders them
    (successive halving keeps the top half; the hold-out re-measures the top few)."""
    order = ordered(scores(results))
    return [n for n in order[order["rank"].notna()]["candidate"] if n in names]
