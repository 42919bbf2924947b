"""What a probe item and a suite are.

An Item is one question with its reference answer. `answer` says how the
answer is read from a completion (see rys.search.extract) and `scoring` how it is
scored (see rys.search.scorers); keeping the two apart lets built-in and loaded
suites share the same code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

# How a completion is read. "emotions": four `Emotion: score` lines (EQ-Bench
# v2.1, revision off); "emotions_revised": first pass, critique, revised scores (v2.0).
ANSWER_TYPES = ("number", "label", "text", "emotions", "emotions_revised")
# How an extracted answer is scored -> the answer types it can score.
SCORINGS = {"partial": ("number",), "exact": ("number", "label", "text"),
            "eqbench": ("emotions", "emotions_revised")}


@dataclass(frozen=True)
class Item:
    id: str
    suite: str
    prompt: str  # the question itself; the suite adds its instructions around it
    reference: Any  # int (number), str (label, text) or {emotion: intensity} (emotions, emotions_revised)
    choices: tuple[str, ...] | None  # option labels ("A", "B", ... or "Yes", "No") if multiple choice
    answer: str  # one of ANSWER_TYPES
    scoring: str  # one of SCORINGS
    version: str  # the suite version the item belongs to
    meta: dict = field(default_factory=dict, compare=False)  # facts the answer was derived from


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    items: tuple[Item, ...]
    scoring: str
    max_tokens: int  # completion budget per item in generate mode
    # Generate mode sends prefix + item.prompt + suffix. Instructions go in the
    # prefix so that every prompt of a suite starts the same way and the
    # server's prompt cache is reused.
    prefix: str = ""
    suffix: str = ""
    source: str = "built-in"


def item_rng(suite: str, seed: int, index: int) -> random.Random:
    """A generator of its own for every item: item i is the same whatever the
    number of items asked for, so --limit 10 gives the first 10 of --limit 50."""
    return random.Random(f"{suite}/{seed}/{index}")


def subsample(items: list[Item], limit: int | None, seed: int, name: str) -> list[Item]:
    """At most `limit` items of a fixed list, chosen by the seed, in their
    original order (another seed gives another held-out subset)."""
    if limit is None or limit >= len(items):
        return list(items)
    picked = sorted(random.Random(f"{name}/{seed}/subset").sample(range(len(items)), limit))
    return [items[i] for i in picked]
