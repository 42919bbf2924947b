"""math.arith and math.word: generated arithmetic items with computed answers."""

from __future__ import annotations

import ast
import json
import operator
import random
from fractions import Fraction
from importlib import resources

from .core import Item, Suite, item_rng

ARITH_VERSION = "1"
ARITH_PREFIX = "Estimate the answer as closely as you can. Reply with a single whole number only, no working.\n\n"
WORD_PREFIX = (
    "Solve this word problem. Work step by step, then finish with a line "
    '"The answer is N." where N is a whole number.\n\n'
)


def _arith_item(rng: random.Random) -> tuple[str, int, dict]:
    """One hard estimation question: a root of a big perfect power, or a big product."""
    kind = rng.choice(["sqrt", "cbrt", "mul"])
    if kind == "sqrt":
        root = rng.randint(1_000, 999_999)
        return f"What is the square root of {root ** 2}?", root, {"kind": kind, "n": root**2}
    if kind == "cbrt":
        root = rng.randint(100, 99_999)
        return f"What is the cube root of {root ** 3}?", root, {"kind": kind, "n": root**3}
    a = rng.randint(10 ** rng.randint(3, 6), 10**7 - 1)
    b = rng.randint(10 ** rng.randint(3, 6), 10**7 - 1)
    return f"What is {a} multiplied by {b}?", a * b, {"kind": kind, "a": a, "b": b}


def arith_suite(name: str, n: int, seed: int) -> Suite:
    items = []
    for i in range(n):
        prompt, answer, meta = _arith_item(item_rng(name, seed, i))
        items.append(Item(f"{name}/{seed}/{i}", name, prompt, answer, None, "number", "partial", ARITH_VERSION, meta))
    return Suite(name, ARITH_VERSION, tuple(items), "partial", max_tokens=32, prefix=ARITH_PREFIX)


# --- word problems: templates are data (rys/probes_data/word_problems.json) ---

_OPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}


def evaluate(expr: str, env: dict[str, int]) -> Fraction | bool:
    """Exact value of a template's arithmetic expression (Fractions, so a
    division that does not come out even is seen as such; no eval())."""

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return Fraction(node.value)
        if isinstance(node, ast.Name):
            return Fraction(env[node.id])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.BoolOp):
            values = [ev(v) for v in node.values]
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _OPS:
            return _OPS[type(node.ops[0])](ev(node.left), ev(node.comparators[0]))
        raise ValueError(f"unsupported expression in word problem template: {expr!r}")

    return ev(ast.parse(expr, mode="eval"))


def load_word_templates() -> dict:
    path = resources.files("rys") / "probes_data" / "word_problems.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _draw(template: dict, names: list[str], rng: random.Random) -> tuple[str, int, dict]:
    """Draw variables until every requirement holds and the answer is a positive
    whole number; templates are written so that this takes a few tries."""
    for _ in range(2000):
        env = {k: rng.randrange(v[0], v[1] + 1, v[2] if len(v) > 2 else 1) for k, v in template["vars"].items()}
        answer = evaluate(template["answer"], env)
        if answer.denominator != 1 or answer <= 0:
            continue
        if all(evaluate(req, env) for req in template.get("require", [])):
            person = rng.choice(names)
            return template["text"].format(name=person, **env), int(answer), {"template": template["id"], "vars": env}
    raise ValueError(f"word problem template {template['id']} never gives a whole answer")


def word_suite(name: str, n: int, seed: int, scoring: str) -> Suite:
    """Multi-step word problems; math.word scores them with partial credit,
    reasoning.gsm8k with exact match (its own items: the name seeds them)."""
    data = load_word_templates()
    items = []
    for i in range(n):
        rng = item_rng(name, seed, i)
        prompt, answer, meta = _draw(rng.choice(data["templates"]), data["names"], rng)
        items.append(Item(f"{name}/{seed}/{i}", name, prompt, answer, None, "number", scoring, data["version"], meta))
    return Suite(name, data["version"], tuple(items), scoring, max_tokens=384, prefix=WORD_PREFIX)
