"""Probe suites: one TOML file each (the built-in ones in probes/, users' in
./probes or $RYS_PROBES; see catalog.py), the groups (aliases) they declare,
and the `--suite` spec that selects them ("math,eq,reasoning",
"gsm8k=FILE.jsonl", "bbh=TASK.json", "bbh=TASK.json:COT.txt", "eqbench=FILE.json")."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ...core.errors import RysError
from .build import build
from .core import Item, Suite, subsample
from .catalog import SuiteFile, find_files, packaged_files
from .loaders import load_bbh, load_eqbench, load_gsm8k

__all__ = ["Item", "Suite", "Selection", "ALIASES", "aliases", "find_files", "resolve", "parse_spec"]

LOADERS = ("gsm8k", "bbh", "eqbench")  # kind=PATH specs


def aliases(files: dict[str, SuiteFile]) -> dict[str, list[str]]:
    """group -> member suite names, groups in the order of their first member."""
    groups: dict[str, list[str]] = {}
    for f in files.values():
        groups.setdefault(f.group, []).append(f.name)
    return groups


# The built-in groups, in order: math = math.arith, math.word; eq; reasoning = the five reasoning suites.
ALIASES = aliases(packaged_files())


@dataclass
class Selection:
    suites: list[Suite]
    groups: dict[str, list[str]]  # alias -> member suite names, for pooled scores
    group_of: dict[str, str] = field(default_factory=dict)  # suite -> the group it pools into (rank's units)


def parse_spec(spec: str) -> list[str]:
    parts = [p.strip() for p in spec.split(",")]
    if not spec.strip() or not all(parts):
        raise RysError(f"empty suite name in --suite {spec!r}")
    return parts


def _unknown(token: str, files: dict[str, SuiteFile], groups: dict[str, list[str]]) -> RysError:
    known = ", ".join(list(groups) + [n for n in files if n not in groups])
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
    (generated suites: `limit` items, default 40; written ones: a seeded sample
    of `limit` items, default all). EQ suites (`eq`, `eqbench=`) are asked as
    EQ-Bench v2.1 asks, four ratings alone, or with `eq_revise` as v2.0 did
    (first pass, critique, revision)."""
    if limit is not None and limit < 1:
        raise RysError(f"--limit must be at least 1, got {limit}")
    files = find_files()
    groups_found = aliases(files)
    suites: dict[str, Suite] = {}
    groups: dict[str, list[str]] = {}
    for token in parse_spec(spec):
        kind, eq_sign, arg = token.partition("=")
        if eq_sign:
            if kind not in LOADERS or not arg:
                raise _unknown(token, files, groups_found)
            suite = _load(kind, arg, limit, seed, eq_revise)
            if suite.name in suites:
                raise RysError(f"suite {suite.name} is named twice in --suite")
            suites[suite.name] = suite
            continue
        names = groups_found.get(token) or ([token] if token in files else None)
        if names is None:
            raise _unknown(token, files, groups_found)
        if len(names) > 1:
            groups[token] = names
        for name in names:
            if name not in suites:
                suites[name] = build(files[name], limit, seed, eq_revise)
    group_of = {n: files[n].group if n in files else n.split(".")[0] for n in suites}
    return Selection(list(suites.values()), groups, group_of)
