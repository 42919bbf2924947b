"""Making a Suite from its file: a seeded sample of `limit` of its written
items (default all), or `limit` items from its generator (default 40)."""

from __future__ import annotations

from ...core.errors import RysError
from .core import Item, Suite, item_rng, subsample
from .eq import eq_item, eq_prompt, eq_version
from .catalog import SuiteFile
from .generators import GENERATORS

DEFAULT_N = 40  # items per generated suite unless --limit says otherwise


def build(f: SuiteFile, limit: int | None, seed: int, eq_revise: bool) -> Suite:
    """The suite `f` defines; eq_revise only changes how EQ items ("emotions") are asked."""
    if f.generator:
        return _generated(f, limit or DEFAULT_N, seed)
    revise = eq_revise and f.answer == "emotions"
    version = eq_version(f.version, revise) if f.answer == "emotions" else f.version
    items = [_written(f, it, version, revise) for it in f.items]
    items = subsample(items, limit, seed, f.name)
    max_tokens = f.max_tokens_revised if revise else f.max_tokens
    return Suite(f.name, version, tuple(items), f.scorer, max_tokens, f.prefix, source=f.source)


def _written(f: SuiteFile, it: dict, version: str, revise: bool) -> Item:
    if f.answer == "emotions":
        prompt = eq_prompt(it["character"], it["dialogue"], list(it["reference"]), revise)
        return eq_item(f.name, it["id"], prompt, it["reference"], version, revise)
    choices = tuple(it["choices"]) if "choices" in it else None
    return Item(f"{f.name}/{it['id']}", f.name, it["prompt"], it["reference"], choices, f.answer, f.scorer, version)


def _generated(f: SuiteFile, n: int, seed: int) -> Suite:
    make = GENERATORS[f.generator].make
    items = []
    for i in range(n):
        try:
            prompt, ref, labels, meta = make(item_rng(f.name, seed, i), f.data)
        except (ValueError, LookupError, ArithmeticError) as e:  # data the generator cannot use
            raise RysError(f"{f.path}: generator {f.generator!r} cannot use its data "
                           f"({type(e).__name__}: {e})") from None
        items.append(Item(f"{f.name}/{seed}/{i}", f.name, prompt, ref, tuple(labels) if labels else None,
                          f.answer, f.scorer, f.version, meta))
    return Suite(f.name, f.version, tuple(items), f.scorer, f.max_tokens, f.prefix, source=f.source)
