"""Scorers as tables: partial credit, exact match, EQ-Bench v2."""

import math

import pytest

from rys.search.scorers import (eq_item_score, eq_penalty, eq_suite_score, partial_credit, score_text, suite_score)
from rys.search.suites.core import Item


@pytest.mark.parametrize("answer, estimate, expected", [
    (95879, 95879, 1.0),
    (100, 110, 1 - 10 / 110),                    # same length
    (100, 90, (1 - 800 / 900) * (1 - 1 / 3)),    # 90 -> 900: a digit short costs a lot
    (1, 9, 1 - 8 / 9),
    (95879, 9588, (1 - 1 / 95880) * (1 - 1 / 5)),  # a digit short: 9588 -> 95880, 1 pad of 5
    (999, 1, (1 - 899 / 999) * (1 - 2 / 3)),       # 1 -> 100, 2 pads of 3
    (123, 123000, 1 - 3 / 6),                      # estimate too long: the answer is padded
    (50, 100, (1 - 400 / 500) * (1 - 1 / 3)),      # 50 -> 500
    (0, 0, 1.0),
    (0, 5, 0.0),
    (5, 0, 0.0),
    (0, 10, 0.0),                                  # 0 -> 00, nothing of 10 is right
    (-12, -12, 1.0),                               # negatives compare by magnitude
    (-12, -10, 1 - 2 / 12),
    (-12, 12, 0.0),                                # wrong sign
    (12, -12, 0.0),
    (12, None, 0.0),                               # no number in the reply
    (12, float("nan"), 0.0),
    (1000, 1000.4, 1.0),                           # estimates are rounded to integers
    (1000, 999.6, 1.0),
])
def test_partial_credit(answer, estimate, expected):
    assert partial_credit(answer, estimate) == pytest.approx(expected, abs=1e-12)


def test_partial_credit_stays_in_unit_interval():
    for a in (0, 1, 7, 10, 99, 12345, -5):
        for e in (0, 1, 8, 10, 100, 54321, -5, 10**12):
            assert 0.0 <= partial_credit(a, e) <= 1.0


@pytest.mark.parametrize("d, expected", [
    (0, 0.0),
    (1, 6.5 / (1 + math.exp(3.6))),
    (4, 3.25),                  # the sigmoid's midpoint
    (5, 6.5 / (1 + math.exp(-1.2))),
    (6, 6.0),                   # linear past 5
    (10, 10.0),
])
def test_eq_penalty(d, expected):
    assert eq_penalty(d) == pytest.approx(expected)


REF = {"Hurt": 8, "Angry": 6, "Hopeful": 1, "Satisfied": 0}


@pytest.mark.parametrize("answer, expected", [
    ({"Hurt": 8, "Angry": 6, "Hopeful": 1, "Satisfied": 0}, 10.0),
    ({"Hurt": 7, "Angry": 6, "Hopeful": 1, "Satisfied": 0}, 10 - 0.7477 * 0.172882),
    ({"Hurt": 8, "Angry": 0, "Hopeful": 1, "Satisfied": 0}, 10 - 0.7477 * 6),
    ({"Hurt": 0, "Angry": 0, "Hopeful": 10, "Satisfied": 10}, 10 - 0.7477 * 33),  # far below 0
    ({"Hurt": 12, "Angry": 6, "Hopeful": 1, "Satisfied": 0}, 10 - 0.7477 * 3.25),  # out of range: as written
])
def test_eq_item_score(answer, expected):
    assert eq_item_score(REF, answer) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("first, revised, expected", [
    ([10, 5], [10, 10], (100.0, 1.0, "revised")),          # revision better, as many parsed
    ([10, 10], [5, 5], (100.0, 1.0, "first")),             # revision worse
    ([8] * 20, [9] * 18 + [None] * 2, (80.0, 1.0, "first")),  # 18 < 95% of 20 parsed
    ([8] * 20, [9] * 19 + [None], (90.0, 0.95, "revised")),   # 19 = 95% of 20
    ([None, 6], [None, None], (60.0, 0.5, "first")),
    ([None, None], [7, None], (70.0, 0.5, "revised")),
    ([None, None], [None, None], (0.0, 0.0, "none")),
    ([-2, -4], [-3, -3], (-30.0, 1.0, "revised")),          # negative scores; a tie goes to the revision
])
def test_eq_suite_score(first, revised, expected):
    score, rate, which = eq_suite_score(first, revised)
    assert (round(score, 9), rate, which) == expected


def item(answer, reference, scoring="exact", choices=None):
    return Item("t/0", "t", "q", reference, choices, answer, scoring, "1")


@pytest.mark.parametrize("it, text, score, parseable", [
    (item("number", 72), "So 48 + 24 = 72.\nThe answer is 72.", 1.0, True),
    (item("number", 72), "The answer is 71.", 0.0, True),
    (item("number", 72), "I cannot tell.", 0.0, False),
    (item("number", 95879, "partial"), "About 95,900.", 1 - 21 / 95900, True),
    (item("number", 95879, "partial"), "Roughly 96 thousand, so 96000.", 1 - 121 / 96000, True),
    (item("label", "B", choices=("A", "B", "C")), "So the answer is (B).", 1.0, True),
    (item("label", "B", choices=("A", "B", "C")), "So the answer is (C).", 0.0, True),
    (item("label", "Yes", choices=("Yes", "No")), "No. You end up 3 steps left.", 0.0, True),
    (item("text", "dyck ] )"), "So the answer is dyck ] ).", 1.0, True),
    (item("text", "dyck ] )"), "So the answer is DYCK   ] ).", 1.0, True),  # case and spacing
])
def test_score_text(it, text, score, parseable):
    got = score_text(it, text)
    assert got["score"] == pytest.approx(score) and got["parseable"] is parseable


def test_partial_credit_scores_only_the_final_answer():
    # The right number appears in the working but the final answer is wrong.
    it = item("number", 95879, "partial")
    assert score_text(it, "I first guessed 95879 but the answer is 90000.")["score"] == pytest.approx(1 - 5879 / 95879)


def test_suite_score_counts_parse_failures_as_zero():
    rows = [{"score": 1.0, "parseable": True}, {"score": 0.0, "parseable": False},
            {"score": 0.5, "parseable": True}, {"score": 0.0, "parseable": False}]
    assert suite_score("exact", rows) == (0.375, 0.5)
