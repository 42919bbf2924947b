"""Suites: reproducible from a seed, and every generated answer re-derived
here from the prompt text by other means (datetime, brute force, walking)."""

import datetime as dt
import itertools
import math
import random
import re
from fractions import Fraction
from importlib import resources

import pytest

from rys.core.errors import RysError
from rys.search.suites import ALIASES, resolve
from rys.search.suites.catalog import packaged_files
from rys.search.suites.mathgen import draw

N = 40
BUILTIN = ["math.arith", "math.word", "eq", "reasoning.causal", "reasoning.date", "reasoning.logic",
           "reasoning.navigation", "reasoning.gsm8k"]


def suite(name, n=N, seed=0):
    return resolve(name, limit=n, seed=seed).suites[0]


def data(name):
    """The generator data of a built-in suite file."""
    return packaged_files()[name].data


def options(prompt):
    """{letter: option text} of a lettered multiple-choice prompt."""
    return dict(re.findall(r"^([A-H])\. (.+)$", prompt, re.M))


# --- reproducibility --------------------------------------------------------------

def test_same_seed_same_items_other_seed_other_items():
    a = resolve("math,eq,reasoning", limit=12, seed=7).suites
    b = resolve("math,eq,reasoning", limit=12, seed=7).suites
    c = resolve("math,eq,reasoning", limit=12, seed=8).suites
    assert [(i.id, i.prompt, i.reference) for s in a for i in s.items] == \
           [(i.id, i.prompt, i.reference) for s in b for i in s.items]
    for sa, sc in zip(a, c):
        assert [i.prompt for i in sa.items] != [i.prompt for i in sc.items], sa.name


@pytest.mark.parametrize("name", [n for n in BUILTIN if n != "eq"])
def test_a_smaller_limit_gives_the_first_items(name):
    assert suite(name, 5).items == suite(name, 20).items[:5]


def test_suites_are_distinct_and_versioned():
    sel = resolve("math,eq,reasoning", limit=10)
    assert [s.name for s in sel.suites] == ["math.arith", "math.word", "eq"] + ALIASES["reasoning"]
    assert sel.groups == {"math": ALIASES["math"], "reasoning": ALIASES["reasoning"]}
    for s in sel.suites:
        assert s.version and all(i.version == s.version and i.suite == s.name for i in s.items)
        assert len({i.id for i in s.items}) == len(s.items)
    # gsm8k reuses the word problem templates but asks other problems
    word, gsm = sel.suites[1], sel.suites[-1]
    assert {i.prompt for i in word.items}.isdisjoint({i.prompt for i in gsm.items})
    assert (word.scoring, gsm.scoring) == ("partial", "exact")


# --- every answer re-derived ----------------------------------------------------------

def test_arith_answers():
    for it in suite("math.arith").items:
        n = [int(x) for x in re.findall(r"\d+", it.prompt)]
        if "square root" in it.prompt:
            assert math.isqrt(n[0]) ** 2 == n[0] and it.reference == math.isqrt(n[0])
        elif "cube root" in it.prompt:
            r = round(n[0] ** (1 / 3))
            root = next(x for x in (r - 1, r, r + 1) if x**3 == n[0])
            assert it.reference == root
        else:
            assert it.reference == n[0] * n[1]
        assert it.reference >= 100  # hard: at least three digits


@pytest.mark.parametrize("name", ["math.word", "reasoning.gsm8k"])
def test_word_problem_answers(name):
    templates = {t["id"]: t for t in data("math.word")["templates"]}
    for it in suite(name).items:
        t = templates[it.meta["template"]]
        env = {k: Fraction(v) for k, v in it.meta["vars"].items()}
        assert Fraction(eval(t["answer"], {}, env)) == it.reference > 0  # Python's own arithmetic
        assert all(eval(r, {}, env) for r in t.get("require", []))
        for value in it.meta["vars"].values():
            assert re.search(rf"\b{value}\b", it.prompt)


def test_every_word_template_is_drawable():
    d = data("math.word")
    for t in d["templates"]:
        text, answer, _, _ = draw(t, d["names"], random.Random(1))
        assert "{" not in text and answer > 0
    assert data("reasoning.gsm8k") == d  # the same templates (data_from), other problems


def parse_date(text):
    for fmt in ("%m/%d/%Y", "%B %d, %Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    raise AssertionError(f"not a date: {text}")


def today_from(prompt):
    m = re.match(r"Today is (.+?)\. What", prompt)
    if m:
        return parse_date(m.group(1))
    m = re.match(r"Yesterday was (.+?)\. What", prompt)
    if m:
        return parse_date(m.group(1)) + dt.timedelta(days=1)
    m = re.match(r"Tomorrow is (.+?)\. What", prompt)
    if m:
        return parse_date(m.group(1)) - dt.timedelta(days=1)
    m = re.match(r"(\d+) days ago it was (.+?)\. What", prompt)
    return parse_date(m.group(2)) + dt.timedelta(days=int(m.group(1)))


def asked_date(today, phrase):
    if m := re.fullmatch(r"(\d+) days from today", phrase):
        return today + dt.timedelta(days=int(m.group(1)))
    if m := re.fullmatch(r"(\d+) days ago", phrase):
        return today - dt.timedelta(days=int(m.group(1)))
    if m := re.fullmatch(r"(\d+) weeks from today", phrase):
        return today + dt.timedelta(days=7 * int(m.group(1)))
    if phrase in ("tomorrow", "yesterday"):
        return today + dt.timedelta(days=1 if phrase == "tomorrow" else -1)
    if phrase == "one year ago":
        return today.replace(year=today.year - 1)
    assert phrase == "one month from today"
    return today.replace(year=today.year + 1, month=1) if today.month == 12 else today.replace(month=today.month + 1)


def test_date_answers():
    for it in suite("reasoning.date", 80).items:
        phrase = re.search(r"What is the date (.+) in MM/DD/YYYY\?", it.prompt).group(1)
        answer = asked_date(today_from(it.prompt), phrase).strftime("%m/%d/%Y")
        opts = options(it.prompt)
        assert list(opts.values()).count(answer) == 1 and len(set(opts.values())) == len(opts) == 5
        assert opts[it.reference] == answer
        assert it.choices == tuple(opts)


CLUES = [
    (r"The (.+) is somewhere to the left of the (.+)", lambda p, a, b: p.index(a) < p.index(b)),
    (r"The (.+) is somewhere to the right of the (.+)", lambda p, a, b: p.index(a) > p.index(b)),
    (r"The (.+) is the (\w+) from the left", lambda p, a, k: p.index(a) == ORD.index(k)),
    (r"The (.+) is the (\w+) from the right", lambda p, a, k: len(p) - 1 - p.index(a) == ORD.index(k)),
]
ORD = ["first", "second", "third", "fourth", "fifth"]


def test_logic_puzzles_have_one_solution_and_need_every_clue():
    for it in suite("reasoning.logic").items:
        head, rest = it.prompt.split(" (listed in no particular order). ")
        objects = [o.removeprefix("the ") for o in head.split(": ", 1)[1].split(", ")]
        body, question = rest.split(" Which one is the ")
        clues = []
        for sentence in body.rstrip(".").split(". "):
            hits = [(check, m.groups()) for pat, check in CLUES if (m := re.fullmatch(pat, sentence))]
            assert len(hits) == 1, sentence
            clues.append(hits[0])

        def solve(cs):
            return [p for p in itertools.permutations(objects) if all(f(p, *args) for f, args in cs)]

        (solution,) = solve(clues)
        for i in range(len(clues)):
            assert len(solve(clues[:i] + clues[i + 1:])) > 1  # no clue is redundant
        pos = ORD.index(question.split()[0])
        assert options(it.prompt)[it.reference] == f"The {solution[pos]}"


def walk(prompt):
    """Where the instructions end, walked with (x, y) tuples."""
    text = prompt.split("starting point? ", 1)[1].split("\nOptions:")[0]
    x = y = 0
    dx, dy = 0, 1
    fixed = text.startswith("Always face forward.")
    for sentence in re.findall(r"[^.]+\.", text)[1:]:
        sentence = sentence.strip()
        if m := re.fullmatch(r"Take (\d+) steps? ?(forward|backward|left|right)?\.", sentence):
            k, where = int(m.group(1)), m.group(2)
            if fixed:
                vx, vy = {"forward": (0, 1), "backward": (0, -1), "left": (-1, 0), "right": (1, 0)}[where]
            else:
                assert where in (None, "forward"), sentence
                vx, vy = dx, dy
            x, y = x + k * vx, y + k * vy
        else:
            assert not fixed, sentence
            dx, dy = {"Turn left.": (-dy, dx), "Turn right.": (dy, -dx), "Turn around.": (-dx, -dy)}[sentence]
    return x, y


def test_navigation_answers_and_balance():
    items = suite("reasoning.navigation").items
    for it in items:
        assert it.reference == ("Yes" if walk(it.prompt) == (0, 0) else "No")
    refs = [it.reference for it in items]
    assert 0.25 < refs.count("Yes") / len(refs) < 0.75


def test_causal_answers_and_balance():
    scenes = {s["id"]: s for s in data("reasoning.causal")["scenes"]}
    items = suite("reasoning.causal", 60).items
    for it in items:
        scene = scenes[it.meta["scene"]]
        m = re.search(r"exactly when (all of these are true|at least one of these is true): (.+?)\. "
                      r"Yesterday, (.+?)\. So .+?\. Suppose instead that (.+), and everything else", it.prompt)
        rule, listed, story, supposed = m.groups()
        causes = [c for c in scene["causes"] if c["rule"] in listed.split("; ")]
        assert len(causes) == len(listed.split("; "))
        held = []
        for c in causes:
            yes, no = c["yes"] in story, c["no"] in story
            assert yes != no, c
            held.append(yes)
        (flip,) = [i for i, c in enumerate(causes) if supposed in (c["cf_yes"], c["cf_no"])]
        assert supposed == (causes[flip]["cf_no"] if held[flip] else causes[flip]["cf_yes"])
        held[flip] = not held[flip]
        happens = all(held) if rule.startswith("all") else any(held)
        assert it.reference == ("Yes" if happens else "No")
    refs = [it.reference for it in items]
    assert 0.25 < refs.count("Yes") / len(refs) < 0.75


# --- the written EQ set -----------------------------------------------------------

def test_eq_items():
    items = suite("eq", 100).items
    revised = resolve("eq", limit=100, eq_revise=True).suites[0]
    assert len(items) >= 40 and revised.max_tokens == 600 and revised.version == "1+v2.0"
    for it, rev in zip(items, revised.items):
        assert len(it.reference) == 4 and all(0 <= v <= 10 for v in it.reference.values())
        assert any(v > 0 for v in it.reference.values())
        # EQ-Bench v2.1 by default: dialogue, the four emotions, four `Emotion: <score>` lines
        assert (it.answer, it.version, rev.answer) == ("emotions", "1+v2.1", "emotions_revised")
        for heading in ("[End dialogue]", "[End of answer]"):
            assert heading in it.prompt and heading in rev.prompt
        assert it.prompt.endswith("\nYour answer:\n")
        # with --eq-revise the v2.0 shape: first pass, critique, revision
        for heading in ("First pass scores:", "Critique:", "Revised scores:"):
            assert heading not in it.prompt and heading in rev.prompt
        for e in it.reference:
            assert f"\n{e}\n" in it.prompt or f"\n{e}\n\n" in it.prompt
            assert f"{e}: <score>" in it.prompt and "<revised score>" not in it.prompt
            assert f"{e}: <score>" in rev.prompt and f"{e}: <revised score>" in rev.prompt


def test_eq_limit_samples_by_seed():
    a, b, c = suite("eq", 10, 1).items, suite("eq", 10, 1).items, suite("eq", 10, 2).items
    assert a == b and a != c and len(a) == 10
    full = suite("eq", 100).items
    assert [full.index(i) for i in a] == sorted(full.index(i) for i in a)  # original order kept


# --- the --suite spec ---------------------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    ("nope", "unknown suite 'nope'"),
    ("math,,eq", "empty suite name"),
    ("csv=foo.csv", "unknown suite 'csv=foo.csv'"),
    ("gsm8k=", "unknown suite 'gsm8k='"),
    ("gsm8k=/no/such/file.jsonl", "gsm8k file not found: /no/such/file.jsonl"),
    ("eqbench=/no/such.json", "eqbench file not found"),
    ("bbh=/no/such.json", "BBH task file not found"),
])
def test_bad_specs(spec, message):
    with pytest.raises(RysError, match=re.escape(message)):
        resolve(spec)


def test_aliases_and_names_are_taken_once():
    sel = resolve("reasoning,reasoning.date,math.arith,math", limit=3)
    assert [s.name for s in sel.suites] == ALIASES["reasoning"] + ["math.arith", "math.word"]


def test_limit_must_be_positive():
    with pytest.raises(RysError, match="--limit"):
        resolve("math", limit=0)


def test_builtin_suites_are_the_files_of_the_package_in_order():
    folder = resources.files("rys.probes")
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".toml")) == sorted(f"{n}.toml" for n in BUILTIN)
    assert list(packaged_files()) == BUILTIN
    assert ALIASES == {"math": ["math.arith", "math.word"], "eq": ["eq"], "reasoning": BUILTIN[3:]}
    assert list(ALIASES) == ["math", "eq", "reasoning"]
