"""Probe suites: the built-in ones, the aliases that group them, and the
`--suite` spec that selects them ("math,eq,reasoning", "gsm8k=FILE.jsonl",
"bbh=TASK.json", "bbh=TASK.json:COT.txt", "eqbench=FILE.json")."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import RysError
from .causal import causal_suite
from .core import Item, Suite, subsample
from .loaders import builtin_eq, load_bbh, load_eqbench, load_gsm8k
from .mathgen import arith_suite, word_suite
from .reasoning import make_date, make_logic, make_navigation, mc_suite

__all__ = ["Item", "Suite", "Selection", "BUILTIN", "ALIASES", "resolve", "parse_spec"]

DEFAULT_N = 40  # items per generated suite unless --limit says otherwise


def _written_eq(limit: int | None, seed: int, revise: bool = False) -> Suite:
    """The written EQ set: all items, or a seeded sample of `limit` of them."""
    suite = builtin_eq(revise=revise)
    return replace(suite, items=tuple(subsample(list(suite.items), limit, seed, suite.name)))


# name -> build(limit, seed, eq_revise). Generated suites make `limit` items (default 40);
# eq_revise only changes how EQ items are asked.
BUILTIN = {
    "math.arith": lambda limit, seed, _: arith_suite("math.arith", limit or DEFAULT_N, seed),
    "math.word": lambda limit, seed, _: word_suite("math.word", limit or DEFAULT_N, seed, "partial"),
    "eq": _written_eq,
    "reasoning.causal": lambda limit, seed, _: causal_suite("reasoning.causal", limit or DEFAULT_N, seed),
    "reasoning.date": lambda limit, seed, _: mc_suite("reasoning.date", make_date, limit or DEFAULT_N, seed),
    "reasoning.logic": lambda limit, seed, _: mc_suite("reasoning.logic", make_logic, limit or DEFAULT_N, seed),
    "reasoning.navigation": lambda limit, seed, _: mc_suite("reasoning.navigation", make_navigation,
                                                            limit or DEFAULT_N, seed),
    "reasoning.gsm8k": lambda limit, seed, _: word_suite("reasoning.gsm8k", limit or DEFAULT_N, seed, "exact"),
}
ALIASES = {
    "math": ["math.arith", "math.word"],
    "eq": ["eq"],
    "reasoning": ["reasoning.causal", "reasoning.date", "reasoning.logic", "reasoning.navigation", "reasoning.gsm8k"],
}
LOADERS = ("gsm8k", "bbh", "eqbench")  # kind=PATH specs


@dataclass
class Selection:
    suites: list[Suite]
    groups: dict[str, list[str]]  # alias -> member suite names, for pooled scores


def parse_spec(spec: str) -> list[str]:
    parts = [p.strip() for p in spec.split(",")]
    if not spec.strip() or not all(parts):
        raise RysError(f"empty suite name in --suite {spec!r}")
    return parts


def _unknown(token: str) -> RysError:
    known = ", ".join(list(ALIASES) + [n for n in BUILTIN if n not in ALIASES])
    return RysError(f"unknown suite {token!r}; choose from {known}, or gsm8k=FILE.jsonl, bbh=FILE.json, eqbench=FILE.json")


def _load(kind: str, arg: str, limit: int | None, seed: int, eq_revise: bool) -> Suite:
    if kind == "gsm8k":
        suite = load_gsm8k(Path(arg))
    elif kind == "eqbench":
        suite = load_eqbench(Path(arg), revise=eq_revise)
    else:
        task, _, cot = arg.partition(":") if arg.count(":") == 1 and arg.endswith(".txt") else (arg, "", "")
        suite = load_bbh(Path(task), Path(cot) if cot else None)
    items = subsample(list(suite.items), limit, seed, suite.name)
    return replace(suite, items=tuple(items))


def resolve(spec: str, limit: int | None = None, seed: int = 0, eq_revise: bool = False) -> Selection:
    """The suites a spec names, in order, each once, with their items built
    (generated suites: `limit` items, default 40; fixed sets: a seeded sample
    of `limit` items, default all). EQ suites (`eq`, `eqbench=`) are asked as
    EQ-Bench v2.1 asks, four ratings alone, or with `eq_revise` as v2.0 did
    (first pass, critique, revision)."""
    if limit is not None and limit < 1:
        raise RysError(f"--limit must be at least 1, got {limit}")
    suites: dict[str, Suite] = {}
    groups: dict[str, list[str]] = {}
    for token in parse_spec(spec):
        kind, eq_sign, arg = token.partition("=")
        if eq_sign:
            if kind not in LOADERS or not arg:
                raise _unknown(token)
            suite = _load(kind, arg, limit, seed, eq_revise)
            if suite.name in suites:
                raise RysError(f"suite {suite.name} is named twice in --suite")
            suites[suite.name] = suite
            continue
        names = ALIASES.get(token) or ([token] if token in BUILTIN else None)
        if names is None:
            raise _unknown(token)
        if len(names) > 1:
            groups[token] = names
        for name in names:
            if name not in suites:
                suites[name] = BUILTIN[name](limit, seed, eq_revise)
    return Selection(list(suites.values()), groups)
