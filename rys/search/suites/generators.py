"""The item generators a suite file can name (`generator = "..."`).

A generator takes (rng, the suite's data) and returns one item as (prompt,
reference, option labels or None, meta); `answer` is the answer kind of its
items and `data` the shape of the data it takes from its suite file (see
shapes.py; {} takes none)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

from .causal import CAUSAL_DATA, make_causal
from .mathgen import WORD_DATA, arith_item, word_problem
from .reasoning import LOGIC_DATA, make_date, make_logic, make_navigation

Make = Callable[[random.Random, dict], "tuple[str, Any, list[str] | None, dict]"]


@dataclass(frozen=True)
class Generator:
    make: Make
    answer: str
    data: dict


GENERATORS = {
    "arith": Generator(arith_item, "number", {}),
    "word_problems": Generator(word_problem, "number", WORD_DATA),
    "causal": Generator(make_causal, "label", CAUSAL_DATA),
    "date": Generator(make_date, "label", {}),
    "logic": Generator(make_logic, "label", LOGIC_DATA),
    "navigation": Generator(make_navigation, "label", {}),
}
