"""Scoring extracted answers, per item and per suite.

Scores run 0-1 (partial credit, exact match) except EQ-Bench, whose item
scores run up to 10 and whose suite score is 0-100 (see
../shared/datasets/eqbench/SCORING.md for the rules followed here).
Every score is finite and inside `score_range` whatever the model wrote."""

from __future__ import annotations

import math

import numpy as np

from .extract import extract_label, extract_text, final_number, parse_emotions, parse_ratings

# The worst EQ-Bench item score an answer within 0-10 can get (all four off by
# 10): 10 - 0.7477 * 40. A rating of 99999999999999999999 scores no lower.
EQ_FLOOR = 10 - 0.7477 * 40


def scale(scoring: str) -> int:
    """What a suite score is out of: 100 for EQ-Bench, 1 for the others."""
    return 100 if scoring == "eqbench" else 1


def score_range(scoring: str) -> tuple[float, float]:
    """(lowest, highest) score of an item row, and of a suite, on the suite's own scale."""
    return (10 * EQ_FLOOR, 100.0) if scoring == "eqbench" else (0.0, 1.0)


def _digits(n: int) -> int:
    """Decimal digits of n >= 0 (str() refuses ints of more than 4,300 digits)."""
    d = max(1, int((n.bit_length() - 1) * math.log10(2)) + 1)  # digits of 2**(bits-1), give or take one
    while d > 1 and n < 10 ** (d - 1):
        d -= 1
    while n >= 10 ** d:
        d += 1
    return d


def partial_credit(answer: int, estimate: float | None) -> float:
    """Credit for an estimate of an integer answer.

    Pad the shorter of answer and estimate with zeros on the right to the same
    number of digits; score = (1 - |a - e| / max(a, e)) * (1 - padding / length),
    clipped to [0, 1]. So 9,587 for 95,879 is heavily penalised for the missing
    digit even though its leading digits are right. An estimate of the wrong
    sign scores 0; a non-integer estimate is rounded first."""
    if estimate is None or (isinstance(estimate, float) and not math.isfinite(estimate)):
        return 0.0
    e = round(estimate)
    if (answer < 0) != (e < 0):
        return 0.0
    a, e = abs(int(answer)), abs(e)
    la, le = _digits(a), _digits(e)
    length, padding = max(la, le), abs(la - le)
    a, e = a * 10 ** (length - la), e * 10 ** (length - le)
    if max(a, e) == 0:
        return 1.0
    score = (1 - abs(a - e) / max(a, e)) * (1 - padding / length)
    return min(1.0, max(0.0, score))


def numbers_equal(a, b) -> bool:
    """Equal to a relative 1e-9; an int past float range equals only itself."""
    if a is None or b is None:
        return False
    try:
        fa, fb = float(a), float(b)
    except OverflowError:
        return a == b
    return abs(fa - fb) <= 1e-9 * max(1.0, abs(fa), abs(fb))


def eq_penalty(d: float) -> float:
    """EQ-Bench v2 penalty for one emotion off by d: sigmoid-shaped up to 5, linear past it."""
    if d == 0:
        return 0.0
    if d <= 5:
        return 6.5 / (1 + math.exp(-1.2 * (d - 4)))
    return d


def eq_item_score(reference: dict[str, float], answer: dict[str, float]) -> float:
    """10 minus the scaled penalties; about 0 for random answers, below 0 for bad
    ones, and never below EQ_FLOOR (nor NaN) however absurd the ratings."""
    score = 10 - 0.7477 * sum(eq_penalty(abs(answer[k] - reference[k])) for k in reference)
    return score if score >= EQ_FLOOR else EQ_FLOOR


def eq_suite_score(first: list[float | None], revised: list[float | None]) -> tuple[float, float, str]:
    """(0-100 score, parse rate, which pass) from per-item first-pass and revised
    item scores (None = unparseable). The revised figure is reported when it is
    at least the first-pass one and at least 95% as many revised answers parsed."""
    f = [s for s in first if s is not None]
    r = [s for s in revised if s is not None]
    n = max(len(first), 1)
    f_score = 10 * sum(f) / len(f) if f else None
    r_score = 10 * sum(r) / len(r) if r else None
    if r_score is not None and (f_score is None or (r_score >= f_score and len(r) >= 0.95 * len(f))):
        return r_score, len(r) / n, "revised"
    if f_score is not None:
        return f_score, len(f) / n, "first"
    return 0.0, 0.0, "none"


def score_text(item, text: str) -> dict:
    """Extract and score one completion: {"extracted", "parseable", "score"}
    plus, for EQ items, the "first" and "revised" item scores (revised is None
    unless the item asks for a revision)."""
    if item.answer == "emotions":  # EQ-Bench v2.1: four ratings, no revision
        ratings = parse_ratings(text, list(item.reference))
        fs = eq_item_score(item.reference, ratings) if ratings else None
        return {"extracted": ratings, "parseable": fs is not None,
                "score": None if fs is None else 10 * fs, "first": fs, "revised": None}
    if item.answer == "emotions_revised":
        emotions = list(item.reference)
        first, revised = parse_emotions(text, emotions)
        fs = eq_item_score(item.reference, first) if first else None
        rs = eq_item_score(item.reference, revised) if revised else None
        best = rs if rs is not None else fs
        return {"extracted": revised or first, "parseable": best is not None,
                "score": None if best is None else 10 * best, "first": fs, "revised": rs}
    if item.answer == "number":
        got = final_number(text)
    elif item.answer == "label":
        got = extract_label(text, item.choices)
    else:
        got = extract_text(text)
    return {"extracted": got, "parseable": got is not None, "score": score_value(item, got)}


def score_value(item, got) -> float:
    """Score of an already extracted answer (None scores 0)."""
    if got is None:
        return 0.0
    if item.scoring == "partial":
        return partial_credit(item.reference, got)
    if item.answer == "number":
        return float(numbers_equal(item.reference, got))
    if item.answer == "label":
        return float(got == item.reference)
    norm = lambda s: " ".join(str(s).split()).rstrip(".").lower()
    return float(norm(got) == norm(item.reference))


def suite_score(scoring: str, rows: list[dict]) -> tuple[float, float]:
    """(score, parse rate) of a list of item rows."""
    if scoring == "eqbench":
        score, rate, _ = eq_suite_score([r.get("first") for r in rows], [r.get("revised") for r in rows])
        return score, rate
    if not rows:
        return 0.0, 0.0
    return (float(np.mean([r["score"] or 0.0 for r in rows])),
            float(np.mean([bool(r["parseable"]) for r in rows])))
