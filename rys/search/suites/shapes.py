"""Checking the shape of data read from a suite file, with messages that say
where the problem is ("items[3].reference must be a string").

A shape is a type or a tuple of types; [shape], a non-empty list of that
shape; {key: shape}, a table with exactly these keys (a key ending in "?"
may be left out); {str: shape}, a table of any keys whose values have that
shape (at least one)."""

from __future__ import annotations

WHAT = {str: "a string", int: "an integer", bool: "true or false", float: "a number",
        (int, float): "a number", dict: "a table", list: "a list"}


class BadShape(ValueError):
    """The data does not have its shape; the message says where and how."""


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def check(value, shape, where: str) -> None:
    """Raise BadShape unless `value` has `shape`; `where` names the value ("" at the top)."""
    if isinstance(shape, list):
        if not isinstance(value, list) or not value:
            raise BadShape(f"{where} must be a non-empty list")
        for i, v in enumerate(value):
            check(v, shape[0], f"{where}[{i}]")
    elif isinstance(shape, dict):
        _check_table(value, shape, where)
    elif not isinstance(value, shape) or (isinstance(value, bool) and shape is not bool):
        raise BadShape(f"{where} must be {WHAT[shape]}")


def _check_table(value, shape: dict, where: str) -> None:
    if not isinstance(value, dict):
        raise BadShape(f"{where} must be a table")
    if str in shape:
        if not value:
            raise BadShape(f"{where} must be a non-empty table")
        for key, v in value.items():
            check(v, shape[str], _at(where, key))
        return
    keys = {k.rstrip("?"): k for k in shape}
    unknown = [k for k in value if k not in keys]
    if unknown:
        raise BadShape(f"unknown key {_at(where, unknown[0])!r}")
    for key, spelled in keys.items():
        if key in value:
            check(value[key], shape[spelled], _at(where, key))
        elif not spelled.endswith("?"):
            raise BadShape(f"missing key {_at(where, key)!r}")
