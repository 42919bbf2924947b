"""Ranking the candidates of a sweep as dnhkng/RYS does, with error bars.

Input: one or more sweep folders (shards of one sweep, see rys.results).
Output: a Ranking, one row per candidate, holding per probe group
(math, eq, reasoning: the aliases of rys.suites that have items):

- score, n and parse rate (rys.scorers.suite_score over the candidate's items);
- delta vs baseline over the items both answered, with a paired bootstrap 95%
  interval (items resampled jointly for both sides, seeded per candidate and
  group so that the numbers do not depend on shard order) and `sig` where the
  interval excludes zero;
- z, the z-score of the delta across the ok candidates (baseline excluded from
  the mean and standard deviation), and `combined`, the sum of z over groups;
- the Pareto front of the ranking column vs layers added, and a hold-out view
  (the same numbers on items of stage "holdout", which the search never saw).

Items of any stage other than "holdout" count as search items. A candidate
scored on more search items ranks above one scored on fewer (successive
halving drops candidates after a few items, and a few lucky items must not
outrank a survivor measured on all of them); the best per group and the
Pareto front come from the candidates measured on the most items.
"""

from __future__ import annotations

import math
import zlib
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import RysError
from .results import Candidate, open_existing
from .scorers import suite_score
from .suites import ALIASES
from .sweep import SCORING_DEFAULTS, SCORING_KEYS

BASELINE = "baseline"
N_BOOT = 1000
HOLDOUT = "holdout"
# Sweep options that decide what a score means: shards must agree on them.
# Others (--shard, --out, --blocks, --keep-models, ...) may differ.
# Model identity keys that may differ between machines holding the same file.
MODEL_LOCAL_KEYS = ("path",)
ROW_KEYS = ("suite", "id", "score", "parseable", "scoring")


@dataclass
class Sweep:
    """The merged contents of one or more result folders."""

    folders: list[Path]
    model: dict | None
    config: dict | None  # the first folder's
    configs: list[dict | None]  # one per folder (shards differ in --shard, --out, ...)
    candidates: dict[str, Candidate]
    items: pd.DataFrame  # candidate, stage, suite, id, group, scoring, row (the full dict)
    notes: list[str] = field(default_factory=list)


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
    sweep: Sweep

    @property
    def notes(self) -> list[str]:
        return self.sweep.notes

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


# -- reading and merging folders ---------------------------------------------

def _read_folder(folder: Path) -> tuple[dict | None, dict | None, list[Candidate], list[dict]]:
    if not Path(folder).is_dir():
        raise RysError(f"{folder}: no such folder")
    with closing(open_existing(folder)) as store:
        model, config = store.get_meta("model"), store.get_meta("config")
        candidates, rows = store.candidates(), store.item_rows()
    if not candidates:
        raise RysError(f"{folder}: the result store holds no candidates yet")
    missing = sorted({k for row in rows for k in ROW_KEYS if k not in row})
    if missing:
        raise RysError(f"{folder}: item rows lack {', '.join(missing)}; re-run the sweep with this rys")
    return model, config, candidates, rows


def _identity(model: dict | None) -> dict:
    return {k: v for k, v in (model or {}).items() if k not in MODEL_LOCAL_KEYS}


def _check_comparable(first: Path, model, config, other: Path, model2, config2) -> None:
    a, b = _identity(model), _identity(model2)
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            raise RysError(f"{first} and {other} hold different models ({key}: {a.get(key)!r} vs {b.get(key)!r})")
    for key in SCORING_KEYS:
        va, vb = ((c or {}).get(key, SCORING_DEFAULTS[key]) for c in (config, config2))
        if va != vb:
            raise RysError(f"{first} and {other} were measured differently (--{key.replace('_', '-')} {va!r} vs {vb!r}); "
                           "rank them separately")


def _merge_candidate(old: Candidate, new: Candidate) -> Candidate:
    """The same candidate in two shards: one measured copy wins over a failed one."""
    if old.layers_added != new.layers_added:
        raise RysError(f"candidate {old.candidate} adds {old.layers_added} layers in one folder "
                       f"and {new.layers_added} in another")
    return new if old.status != "ok" and new.status == "ok" else old


def _group_of(suite: str) -> str:
    """The alias a suite belongs to (math.arith -> math), else its name up to the first dot."""
    return next((alias for alias, members in ALIASES.items() if suite in members), suite.split(".")[0])


def _items_frame(rows: list[dict], notes: list[str]) -> pd.DataFrame:
    cols = ["candidate", "stage", "suite", "id", "group", "scoring", "row"]
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame({"candidate": [r["candidate"] for r in rows], "stage": [r["stage"] for r in rows],
                       "suite": [r["suite"] for r in rows], "id": [str(r["id"]) for r in rows],
                       "scoring": [r["scoring"] for r in rows], "score": [r["score"] for r in rows],
                       "row": rows})
    df["group"] = df["suite"].map(_group_of)
    key = ["candidate", "suite", "id"]
    conflicts = df[df.duplicated(key, keep=False)].groupby(key)["score"].nunique(dropna=False)
    if (conflicts > 1).any():
        notes.append(f"{int((conflicts > 1).sum())} items were scored differently in two folders; "
                     "the first folder's score is used")
    return df.drop_duplicates(key, keep="first")[cols].reset_index(drop=True)


def load(folders: list[Path]) -> Sweep:
    """Read and merge result folders; refuse folders that measured different things."""
    if not folders:
        raise RysError("no result folders given")
    folders = [Path(f) for f in folders]
    model = config = None
    candidates: dict[str, Candidate] = {}
    rows: list[dict] = []
    configs = []
    for i, folder in enumerate(folders):
        m, c, cands, r = _read_folder(folder)
        configs.append(c)
        if i == 0:
            model, config = m, c
        else:
            _check_comparable(folders[0], model, config, folder, m, c)
        for cand in cands:
            candidates[cand.candidate] = _merge_candidate(candidates[cand.candidate], cand) \
                if cand.candidate in candidates else cand
        rows += r
    notes: list[str] = []
    items = _items_frame(rows, notes)
    stray = sorted(set(items["candidate"]) - set(candidates))
    if stray:
        notes.append(f"items of unknown candidates ignored: {', '.join(stray)}")
        items = items[items["candidate"].isin(candidates)]
    base = candidates.get(BASELINE)
    if base is None or base.status != "ok":
        raise RysError(f"no measured baseline in {', '.join(map(str, folders))}; deltas need one")
    return Sweep(folders, model, config, configs, candidates, items, notes)


# -- the statistics -------------------------------------------------------------

def unit_scoring(rows: pd.DataFrame, unit: str) -> str:
    """The scoring kind to pool a unit's items with: EQ-Bench scores are not plain means."""
    kinds = set(rows["scoring"])
    if "eqbench" in kinds and len(kinds) > 1:
        raise RysError(f"probe group {unit} mixes EQ-Bench and other scorings; rank with per-suite groups")
    return sorted(kinds)[0]


def eq_resample_scores(rows: list[dict], idx: np.ndarray) -> np.ndarray:
    """rys.scorers.eq_suite_score of every resample at once (tests hold the two
    equal): idx (B, n) item indices -> (B,) EQ-Bench scores. suite_score called
    per resample costs seconds per candidate on a real sweep."""

    def one_pass(key: str) -> tuple[np.ndarray, np.ndarray]:
        v = np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)
        parsed = ~np.isnan(v)
        count = parsed[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return count, 10 * np.where(parsed, v, 0.0)[idx].sum(axis=1) / count

    n_first, first = one_pass("first")
    n_rev, rev = one_pass("revised")
    # the revised pass counts when it is at least as good and at least 95% as many of its answers parsed
    use_rev = (n_rev > 0) & ((n_first == 0) | ((rev >= first) & (n_rev >= 0.95 * n_first)))
    return np.where(use_rev, rev, np.where(n_first > 0, first, 0.0))


def paired_delta(scoring: str, cand: list[dict], base: list[dict], seed: list[int],
                 n_boot: int = N_BOOT) -> tuple[float, float, float]:
    """(delta, ci_low, ci_high): candidate minus baseline score over the same
    items (cand[i] and base[i] are one item), and the 95% percentile interval
    of that delta over n_boot resamples of the items, drawn once for both sides."""
    n = len(cand)
    delta = suite_score(scoring, cand)[0] - suite_score(scoring, base)[0]
    idx = np.random.default_rng(seed).integers(0, n, (n_boot, n))  # (n_boot, n) item indices
    if scoring == "eqbench":  # not a plain mean: re-score both sides per resample
        stats = eq_resample_scores(cand, idx) - eq_resample_scores(base, idx)
    else:  # a mean is linear, so the mean of per-item differences is the difference of scores
        d = np.array([(c["score"] or 0.0) - (b["score"] or 0.0) for c, b in zip(cand, base)])
        stats = d[idx].mean(axis=1)
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(delta), float(lo), float(hi)


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


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
                                     [seed, _crc(cand), _crc(unit), _crc(stage)], n_boot)
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


# -- assembling the ranking ---------------------------------------------------------

def _units(items: pd.DataFrame, with_suites: bool) -> tuple[list[str], list[str]]:
    present = set(items["group"])
    groups = [g for g in ALIASES if g in present] + sorted(present - set(ALIASES))
    suites = sorted(set(items["suite"]) - set(groups)) if with_suites else []
    return groups, suites


def _stage_columns(sweep: Sweep, stage_items: pd.DataFrame, units: list[str], groups: list[str],
                   names: list[str], seed: int, n_boot: int, prefix: str) -> tuple[dict, dict[str, int]]:
    cols: dict[str, dict] = {}
    scales = {}
    for unit in units:
        rows = stage_items[stage_items["group"] == unit] if unit in groups else \
            stage_items[stage_items["suite"] == unit]
        if rows.empty:
            continue
        scoring = unit_scoring(rows, unit)
        scales[unit] = 100 if scoring == "eqbench" else 1
        stats = unit_stats(rows, unit, scoring, names, seed, n_boot, prefix or "search")
        for cand, st in stats.items():
            n_paired = st.pop("n_paired", st["n"])
            if n_paired < st["n"]:
                sweep.notes.append(f"{cand}: {prefix}{unit} delta over {n_paired} of {st['n']} items "
                                   "(those the baseline answered too)")
            for k, v in st.items():
                cols.setdefault(f"{prefix}{unit}{'_' + k if k else ''}", {})[cand] = v
    return cols, scales


def _base_frame(sweep: Sweep) -> pd.DataFrame:
    # sorted by name: sums over candidates then do not depend on the order of the folders
    cands = sorted(sweep.candidates.values(), key=lambda c: c.candidate)
    return pd.DataFrame({
        "candidate": [c.candidate for c in cands],
        "status": [c.status for c in cands],
        "layers_added": [c.layers_added for c in cands],
        "layers": [len(c.path) if c.path else None for c in cands],
        "spec": [c.spec for c in cands],
        "reason": [c.reason for c in cands],
    }).set_index("candidate", drop=False)


def _order(t: pd.DataFrame, by_col: str) -> pd.DataFrame:
    """Baseline first, then ok candidates by search items scored, then by `by`
    (descending, NaN last, fewer layers first on ties), then the rest by
    status and name."""
    ok = t[(t["status"] == "ok") & (t.index != BASELINE)].copy()
    ok["_v"] = ok[by_col].fillna(-np.inf)
    ok = ok.sort_values(["_depth", "_v", "layers_added", "candidate"],
                        ascending=[False, False, True, True]).drop(columns="_v")
    ok["rank"] = range(1, len(ok) + 1)
    rest = t[(t["status"] != "ok")].sort_values(["status", "candidate"])
    return pd.concat([t.loc[[BASELINE]], ok, rest])


def _add_combined(t: pd.DataFrame, groups: list[str], measured: np.ndarray, notes: list[str]) -> None:
    """Columns {group}_z and combined (their sum) for the measured rows."""
    for g in groups:
        t.loc[measured, f"{g}_z"] = zscores(t.loc[measured, f"{g}_delta"])
        if t.loc[measured & (t.index != BASELINE), f"{g}_delta"].nunique() < 2:
            notes.append(f"the candidates' {g} deltas do not vary, so their {g} z-scores are 0")
    # NaN when a group has no delta, so such a candidate sinks instead of gaining
    t["combined"] = t[[f"{g}_z" for g in groups]].sum(axis=1, min_count=len(groups)).where(measured)


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
    sweep = load(folders)
    search = sweep.items[sweep.items["stage"] != HOLDOUT]
    held = sweep.items[sweep.items["stage"] == HOLDOUT]
    if search.empty:
        raise RysError(f"no scored items in {', '.join(map(str, sweep.folders))}")
    groups, suite_units = _units(search, suites or by in set(search["suite"]))
    choices = ["combined"] + groups + suite_units
    if by not in choices:
        raise RysError(f"cannot rank by {by!r}: choose from {', '.join(choices)}")
    t = _base_frame(sweep)
    names = [BASELINE] + [n for n in t.index if n != BASELINE and t.at[n, "status"] == "ok"]
    cols, scales = _stage_columns(sweep, search, groups + suite_units, groups, names, seed, n_boot, "")
    hcols, _ = _stage_columns(sweep, held, groups + suite_units, groups, names, seed, n_boot, "holdout_")
    t = pd.concat([t, pd.DataFrame(cols), pd.DataFrame(hcols)], axis=1)
    t["rank"] = np.nan
    measured = t.index.isin(names)
    _add_combined(t, groups, measured, sweep.notes)
    by_col = "combined" if by == "combined" else f"{by}_delta"
    t["_depth"] = search.groupby("candidate").size().reindex(t.index).fillna(0).astype(int)
    full = measured & (t["_depth"] >= t.loc[measured & (t.index != BASELINE), "_depth"].max())
    n_short = int((measured & ~full & (t.index != BASELINE)).sum())
    if n_short:
        sweep.notes.append(f"{n_short} candidates were scored on fewer search items than the rest "
                           "(successive halving or an unfinished run): they rank after those measured "
                           "on the most items and are left out of the best per group and the Pareto front")
    on_front = full | (t.index == BASELINE)
    front = pareto_front(t.loc[on_front, by_col], t.loc[on_front, "layers_added"])
    t["pareto"] = t.index.isin(front)
    best = _best(t[full & (t.index != BASELINE)], groups + suite_units)
    t = _order(t, by_col).reset_index(drop=True)
    holdout = [u for u in groups + suite_units if f"holdout_{u}" in t]
    return Ranking(_tidy(t, groups + suite_units, holdout), by, groups, suite_units, scales, best, front,
                   holdout, sweep)


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
