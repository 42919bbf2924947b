"""Answer extraction: numbers, option labels, free text, EQ-Bench score blocks."""

import pytest

from rys.search.extract import (answer_phrase, extract_label, extract_text, final_number, label_probs, parse_emotions, parse_number, strip_think)


@pytest.mark.parametrize("text, expected", [
    ("The answer is 42.", 42),
    ("1,234,567", 1234567),
    ("first 12 then 15", 15),                               # no marker: the last number
    ("The answer is 7. Check: 7 * 3 = 21.", 7),             # the marker wins over later numbers
    ("Natalia sold 72 clips.\n#### 72", 72),
    ("so \\boxed{13} is it, not 14", 13),
    ("It is about 9.6 x 10^4", 96000),
    ("roughly 3e5", 300000),
    ("The answer is: approximately 95,880.", 95880),
    ("**Answer:** 88", 88),
    ("The answer is -17", -17),
    ("it fell to \u22124 degrees", -4),                     # typographic minus
    ("5-3 = 2", 2),                                         # a hyphen is not a sign
    ("$1,200.50 in total", 1200.5),
    ("<think>It must be 99</think>The answer is 5", 5),
    ("<think>unfinished thought about 99", None),           # truncated while thinking: no answer
    ("I cannot work this out.", None),
    ("", None),
])
def test_final_number(text, expected):
    assert final_number(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("#### 1,000", 1000), (" -35", -35), ("7.25", 7.25), ("none", None),
])
def test_parse_number(text, expected):
    assert parse_number(text) == expected


def test_strip_think():
    assert strip_think("<think>a</think> b <think>c</think> d") == "b  d"
    assert strip_think("reasoning the template opened</think>\nFinal: 3") == "Final: 3"
    assert strip_think("plain") == "plain"


ABCD = ("A", "B", "C", "D")
YN = ("Yes", "No")


@pytest.mark.parametrize("text, labels, expected", [
    ("Let me see.\nSo the answer is (B).", ABCD, "B"),
    ("so the answer is b", ABCD, "B"),
    ("B", ABCD, "B"),
    ("(C) The van", ABCD, "C"),
    ("D. The bus is last.", ABCD, "D"),
    ("A car is parked first, so I pick the van.", ABCD, None),  # the article "A" is not an answer
    ("The answer is option (D), because it is last.", ABCD, "D"),
    ("The answer is A or B.", ABCD, None),                      # two options named: no answer
    ("The answer is E.", ABCD, None),                           # not an option
    ("Yes\n\nThis answer is correct. The answer is indeed X.", YN, "Yes"),  # SmolLM2, verbatim
    ("C\nLet me check. The answer is B.", ABCD, "B"),              # the last word counts
    ("Yes, you end where you started.", YN, "Yes"),
    ("No.", YN, "No"),
    ("**So the answer is No.**", YN, "No"),
    ("I think so, probably.", YN, None),
    ("Answer: True", ("False", "True"), "True"),
    ("<think>It is A</think>\nThe answer is C.", ABCD, "C"),
    ("", ABCD, None),
])
def test_extract_label(text, labels, expected):
    assert extract_label(text, labels) == expected


@pytest.mark.parametrize("text, expected", [
    ("Walk through it. So the answer is ] ) }.", "] ) }"),
    ("So the answer is \"valid\".", "valid"),
    ("valid", "valid"),                               # a short one-line reply is its own answer
    ("Several lines\nof working\nwithout a conclusion", None),
])
def test_extract_text(text, expected):
    assert extract_text(text) == expected


def test_answer_phrase_takes_the_last_one():
    assert answer_phrase("The answer is 3? No wait.\nThe answer is 4.\nDone") == "4."


def test_label_probs_sums_spellings_of_a_label():
    top = [(" B", -0.5), ("B", -1.5), ("(A", -3.0), ("The", -0.1), ("C", -9.0)]
    probs = label_probs(top, ABCD)
    assert set(probs) == {"A", "B", "C"}
    assert probs["B"] == pytest.approx(0.60653066 + 0.22313016)
    assert label_probs([("The", -0.1)], ABCD) == {}


# --- EQ-Bench answers ---------------------------------------------------------------

EMOTIONS = ["Remorseful", "Indifferent", "Affectionate", "Annoyed"]

TIDY = """First pass scores:
Remorseful: 2
Indifferent: 3
Affectionate: 0
Annoyed: 5

Critique: Robert seems more irritated than sorry. He dismisses her feelings.

Revised scores:
Remorseful: 0
Indifferent: 6
Affectionate: 0
Annoyed: 7

[End of answer]"""


def test_parse_emotions_tidy_answer():
    first, revised = parse_emotions(TIDY, EMOTIONS)
    assert first == {"Remorseful": 2, "Indifferent": 3, "Affectionate": 0, "Annoyed": 5}
    assert revised == {"Remorseful": 0, "Indifferent": 6, "Affectionate": 0, "Annoyed": 7}


@pytest.mark.parametrize("text, first, revised", [
    # chatter around the blocks, markdown headings and bold names
    ("Sure! Here is my analysis.\n\n**First pass scores:**\n**Remorseful:** 1\nIndifferent: 4\nAffectionate: 0\n"
     "Annoyed: 6\n\n**Critique:** ok\n\n## Revised scores:\nRemorseful: 1\nIndifferent: 5\nAffectionate: 0\n"
     "Annoyed: 8\n\nI hope this helps!",
     {"Remorseful": 1, "Indifferent": 4, "Affectionate": 0, "Annoyed": 6},
     {"Remorseful": 1, "Indifferent": 5, "Affectionate": 0, "Annoyed": 8}),
    # an emotion missing from the revision
    (TIDY.replace("Revised scores:\nRemorseful: 0\n", "Revised scores:\n"),
     {"Remorseful": 2, "Indifferent": 3, "Affectionate": 0, "Annoyed": 5}, None),
    # a fifth, invented emotion in the first pass
    (TIDY.replace("Annoyed: 5\n", "Annoyed: 5\nJealous: 2\n"),
     None, {"Remorseful": 0, "Indifferent": 6, "Affectionate": 0, "Annoyed": 7}),
    # a renamed emotion
    (TIDY.replace("Indifferent: 3", "Apathetic: 3"),
     None, {"Remorseful": 0, "Indifferent": 6, "Affectionate": 0, "Annoyed": 7}),
    # out of range: taken as written, as EQ-Bench does; a negative value does not parse
    (TIDY.replace("Annoyed: 7", "Annoyed: 12").replace("Annoyed: 5", "Annoyed: -5"),
     None, {"Remorseful": 0, "Indifferent": 6, "Affectionate": 0, "Annoyed": 12}),
    # decimals and other capitalisation
    (TIDY.replace("Annoyed: 7", "annoyed: 7.5"),
     {"Remorseful": 2, "Indifferent": 3, "Affectionate": 0, "Annoyed": 5},
     {"Remorseful": 0, "Indifferent": 6, "Affectionate": 0, "Annoyed": 7.5}),
    # no revision at all: the first pass has no end marker either, so nothing parses
    (TIDY.split("\n\nRevised")[0], None, None),
    # thinking before the answer is ignored
    ("<think>Remorseful: 9\nIndifferent: 9</think>" + TIDY,
     {"Remorseful": 2, "Indifferent": 3, "Affectionate": 0, "Annoyed": 5},
     {"Remorseful": 0, "Indifferent": 6, "Affectionate": 0, "Annoyed": 7}),
    ("I am not able to rate emotions.", None, None),
])
def test_parse_emotions_real_looking_answers(text, first, revised):
    assert parse_emotions(text, EMOTIONS) == (first, revised)
