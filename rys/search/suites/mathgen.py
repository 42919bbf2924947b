"""Generators of math items with computed answers: `arith` (math.arith) and
`word_problems` (math.word, reasoning.gsm8k; templates are data in the suite file)."""

from __future__ import annotations

import ast
import operator
import random
from fractions import Fraction


def arith_item(rng: random.Random, _data: dict) -> tuple[str, int, None, dict]:
    """One hard estimation question: a root of a big perfect power, or a big product."""
    kind = rng.choice(["sqrt", "cbrt", "mul"])
    if kind == "sqrt":
        root = rng.randint(1_000, 999_999)
        return f"What is the square root of {root ** 2}?", root, None, {"kind": kind, "n": root**2}
    if kind == "cbrt":
        root = rng.randint(100, 99_999)
        return f"What is the cube root of {root ** 3}?", root, None, {"kind": kind, "n": root**3}
    a = rng.randint(10 ** rng.randint(3, 6), 10**7 - 1)
    b = rng.randint(10 ** rng.randint(3, 6), 10**7 - 1)
    return f"What is {a} multiplied by {b}?", a * b, None, {"kind": kind, "a": a, "b": b}


# --- word problems ----------------------------------------------------------------

# The data a word problem suite holds: names for {name}, and templates whose
# variables are drawn from inclusive ranges [low, high] or [low, high, step].
WORD_DATA = {"names": [str], "templates": [{"id": str, "text": str, "vars": {str: [int]}, "answer": str,
                                            "require?": [str]}]}

_OPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}


def exact_value(expr: str, env: dict[str, int]) -> Fraction | bool:
    """Exact value of a template's arithmetic expression (Fractions, so a
    division that does not come out even is seen as such; no eval())."""

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return Fraction(node.value)
        if isinstance(node, ast.Name) and node.id in env:
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

    try:
        return ev(ast.parse(expr, mode="eval"))
    except SyntaxError:
        raise ValueError(f"word problem template expression is not Python arithmetic: {expr!r}") from None


def draw(template: dict, names: list[str], rng: random.Random) -> tuple[str, int, None, dict]:
    """Draw variables until every requirement holds and the answer is a positive
    whole number; templates are written so that this takes a few tries."""
    for _ in range(2000):
        env = {k: rng.randrange(v[0], v[1] + 1, v[2] if len(v) > 2 else 1) for k, v in template["vars"].items()}
        answer = exact_value(template["answer"], env)
        if answer.denominator != 1 or answer <= 0:
            continue
        if all(exact_value(req, env) for req in template.get("require", [])):
            person = rng.choice(names)
            return (template["text"].format(name=person, **env), int(answer), None,
                    {"template": template["id"], "vars": env})
    raise ValueError(f"word problem template {template['id']} never gives a whole answer")


def word_problem(rng: random.Random, data: dict) -> tuple[str, int, None, dict]:
    """A multi-step word problem from one of the suite's templates."""
    return draw(rng.choice(data["templates"]), data["names"], rng)
