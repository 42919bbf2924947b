"""The bootstrap: 95% intervals of suite scores over resampled items.

One resampling serves every interval rys prints: `rys probe`'s interval of a
suite score, the report's intervals of a candidate's score, and the paired
interval of a candidate's delta over the baseline (`rys rank`), where the
same resampled items are drawn once for both sides.
"""

from __future__ import annotations

import zlib

import numpy as np

from .scorers import suite_score

N_BOOT = 1000  # resamples per interval
CHUNK = 100  # resamples drawn at once: (CHUNK, n) indices bound the memory on large data sets


def crc(text: str) -> int:
    """A stable number from a name, to seed each suite's or candidate's resamples apart."""
    return zlib.crc32(text.encode())


def resamples(n: int, seed, n_boot: int = N_BOOT):
    """Chunks of item indices (k, n), n_boot rows in all, drawn with replacement."""
    rng = np.random.default_rng(seed)
    for k in range(0, n_boot, CHUNK):
        yield rng.integers(0, n, (min(CHUNK, n_boot - k), n))


def resampled_scores(scoring: str, rows: list[dict], idx: np.ndarray) -> np.ndarray:
    """The suite score of every resample at once: idx (B, n) item indices -> (B,).
    For EQ-Bench scorings this equals rys.search.scorers.eq_suite_score per resample
    (tests hold the two equal); the other scorings are plain means."""
    if scoring == "eqbench":
        return _eq_scores(rows, idx)
    scores = np.array([r["score"] or 0.0 for r in rows], dtype=float)
    return scores[idx].mean(axis=1)


def _eq_scores(rows: list[dict], idx: np.ndarray) -> np.ndarray:
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


def _interval(stats: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def bootstrap_ci(scoring: str, rows: list[dict], seed: int, name: str, n_boot: int = N_BOOT) -> tuple[float, float]:
    """95% percentile interval of the suite score over items resampled with
    replacement; the seed and the suite name fix the resamples."""
    if not rows:
        return 0.0, 0.0
    stats = [resampled_scores(scoring, rows, idx) for idx in resamples(len(rows), [seed, crc(name)], n_boot)]
    return _interval(np.concatenate(stats))


def paired_delta(scoring: str, cand: list[dict], base: list[dict], seed: list[int],
                 n_boot: int = N_BOOT) -> tuple[float, float, float]:
    """(delta, ci_low, ci_high): candidate minus baseline score over the same
    items (cand[i] and base[i] are one item), and the 95% percentile interval
    of that delta over n_boot resamples of the items, drawn once for both sides."""
    delta = suite_score(scoring, cand)[0] - suite_score(scoring, base)[0]
    stats = [resampled_scores(scoring, cand, idx) - resampled_scores(scoring, base, idx)
             for idx in resamples(len(cand), seed, n_boot)]
    return (float(delta), *_interval(np.concatenate(stats)))
