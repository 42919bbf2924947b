"""The catalog of suite files: where they are found and how one is read (the
one loader of suite files; probes/README.md gives the format).

A suite is one TOML file named after it: probes/math.arith.toml is the suite
math.arith. Files are looked up in the packaged probes/ folder (the built-in
suites), then in ./probes of the current directory, then in every folder of
$RYS_PROBES (os.pathsep-separated). Every problem with a file is a one-line
RysError naming it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Iterable

from ...core.errors import RysError
from ...core.files import read_toml
from .core import SCORINGS
from .generators import GENERATORS
from .shapes import BadShape, check

ENV = "RYS_PROBES"
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # no ',' or '=': names go into --suite specs
# The answer kinds a suite file can give (core.ANSWER_TYPES but emotions_revised, which
# --eq-revise makes of emotions), and the keys of a written item of each.
ITEM_SHAPES = {
    "number": {"id": str, "prompt": str, "reference": (int, float)},
    "label": {"id": str, "prompt": str, "reference": str, "choices": [str]},
    "text": {"id": str, "prompt": str, "reference": str},
    "emotions": {"id": str, "character": str, "dialogue": [str], "reference": {str: int}},
}
TOP_SHAPE = {"version": str, "group": str, "order?": int, "scorer": str, "answer": str, "max_tokens": int,
             "max_tokens_revised?": int, "prefix?": str, "items?": [dict], "generator?": str, "data?": dict,
             "data_from?": str}


@dataclass(frozen=True)
class SuiteFile:
    """One suite as its file defines it: written items, or a generator and its data."""
    name: str
    path: Path
    builtin: bool
    version: str
    group: str  # the alias it pools into
    order: int | None  # place in listings and in its group; files without one come last, by name
    scorer: str  # a key of core.SCORINGS
    answer: str  # how the answer is read (core.ANSWER_TYPES)
    max_tokens: int
    max_tokens_revised: int | None  # answer "emotions": the budget with --eq-revise
    prefix: str
    items: tuple[dict, ...] | None
    generator: str | None
    data: dict  # the generator's templates/data
    data_from: str | None  # or the suite whose data it shares

    @property
    def source(self) -> str:
        return "built-in" if self.builtin else str(self.path)


def packaged_dir() -> Path:
    return Path(str(resources.files("rys.probes")))


def read_suite(path: Path, builtin: bool = False) -> SuiteFile:
    """The suite a file defines, checked."""
    raw = read_toml(path)
    try:
        if not NAME.match(path.stem):
            raise BadShape("a suite file's name must be letters, digits, '.', '_' or '-'")
        check(raw, TOP_SHAPE, "")
        _check_kinds(raw)
    except BadShape as e:
        raise RysError(f"{path}: {e}") from None
    return SuiteFile(path.stem, path, builtin, raw["version"], raw["group"], raw.get("order"), raw["scorer"],
                     raw["answer"], raw["max_tokens"], raw.get("max_tokens_revised"), raw.get("prefix", ""),
                     tuple(raw["items"]) if "items" in raw else None, raw.get("generator"), raw.get("data", {}),
                     raw.get("data_from"))


def _check_kinds(raw: dict) -> None:
    """What the shape check cannot see: names, known kinds, and keys that go together."""
    if not NAME.match(raw["group"]):
        raise BadShape("group must be letters, digits, '.', '_' or '-'")
    if raw["scorer"] not in SCORINGS:
        raise BadShape(f"unknown scorer {raw['scorer']!r}; choose from {', '.join(SCORINGS)}")
    if raw["answer"] not in ITEM_SHAPES:
        raise BadShape(f"unknown answer {raw['answer']!r}; choose from {', '.join(ITEM_SHAPES)}")
    if raw["answer"] not in SCORINGS[raw["scorer"]]:
        raise BadShape(f"scorer {raw['scorer']!r} cannot score answer {raw['answer']!r}")
    for key in ("max_tokens", "max_tokens_revised"):
        if raw.get(key, 1) < 1:
            raise BadShape(f"{key} must be at least 1")
    if ("max_tokens_revised" in raw) != (raw["answer"] == "emotions"):
        raise BadShape("max_tokens_revised goes with answer 'emotions', and only there")
    if ("items" in raw) == ("generator" in raw):
        raise BadShape("give either items or a generator")
    if "items" in raw:
        _check_items(raw["items"], raw["answer"])
    else:
        _check_generator(raw)


def _check_items(items: list[dict], answer: str) -> None:
    seen = set()
    for i, item in enumerate(items):
        check(item, ITEM_SHAPES[answer], f"items[{i}]")
        if item["id"] in seen:
            raise BadShape(f"items[{i}]: id {item['id']!r} is used twice")
        seen.add(item["id"])
        if answer == "label" and item["reference"] not in item["choices"]:
            raise BadShape(f"items[{i}]: reference {item['reference']!r} is not one of its choices")


def _check_generator(raw: dict) -> None:
    gen = GENERATORS.get(raw["generator"])
    if gen is None:
        raise BadShape(f"unknown generator {raw['generator']!r}; choose from {', '.join(GENERATORS)}")
    if raw["answer"] != gen.answer:
        raise BadShape(f"generator {raw['generator']!r} makes {gen.answer!r} items, not {raw['answer']!r}")
    if "data_from" in raw and "data" in raw:
        raise BadShape("give either data or data_from")
    if "data_from" not in raw:
        check(raw.get("data", {}), gen.data, "data")


def _folders() -> list[Path]:
    """Where suite files are looked for, in order."""
    folders = [packaged_dir()]
    if (Path.cwd() / "probes").is_dir():
        folders.append(Path.cwd() / "probes")
    for entry in filter(None, os.environ.get(ENV, "").split(os.pathsep)):
        if not Path(entry).is_dir():
            raise RysError(f"{ENV} names {entry}, which is not a folder")
        folders.append(Path(entry))
    return folders


def find_files() -> dict[str, SuiteFile]:
    """Every suite file found, read and checked, in order (see `in_order`)."""
    found: dict[str, SuiteFile] = {}
    packaged = packaged_dir().resolve()
    for folder in _folders():
        for path in sorted(folder.glob("*.toml")):
            other = found.get(path.stem)
            if other is None:
                found[path.stem] = read_suite(path, builtin=folder.resolve() == packaged)
            elif other.path.resolve() != path.resolve():
                raise RysError(f"suite {path.stem} is defined twice: {other.path} and {path}")
    return in_order(found.values())


def packaged_files() -> dict[str, SuiteFile]:
    """The built-in suites alone."""
    return in_order(read_suite(path, builtin=True) for path in sorted(packaged_dir().glob("*.toml")))


def packaged_file(name: str) -> SuiteFile:
    """One built-in suite."""
    return packaged_files()[name]


def in_order(files: Iterable[SuiteFile]) -> dict[str, SuiteFile]:
    """name -> file, in the order of their `order` fields (files without one last), then by name;
    a file with data_from gets that suite's data."""
    files = sorted(files, key=lambda f: (f.order is None, f.order or 0, f.name))
    by_name = {f.name: f for f in files}
    for f in files:
        if f.group in by_name and f.group != f.name:
            raise RysError(f"{f.path}: group {f.group!r} is the name of another suite ({by_name[f.group].path})")
        lender = by_name.get(f.data_from)
        if f.data_from and (lender is None or lender.generator != f.generator or lender.data_from):
            raise RysError(f"{f.path}: data_from {f.data_from!r} must name a suite with its own data "
                           f"for generator {f.generator!r}")
    return {f.name: replace(f, data=by_name[f.data_from].data) if f.data_from else f for f in files}
