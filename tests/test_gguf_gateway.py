"""rys/core/gguf_file.py is the only module that reads or writes the GGUF format.

Other modules may import gguf for its tables (gguf.Keys, MODEL_TENSOR,
GGUFValueType, GGMLQuantizationType...) but never name gguf-py's reader or
writer: not by import, attribute, call or annotation.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rys

GATEWAY = "core/gguf_file.py"
FORMAT_NAMES = {"GGUFReader", "GGUFWriter"}
FORMAT_MODULES = {"gguf.gguf_reader", "gguf.gguf_writer"}
PACKAGE = Path(rys.__file__).parent


def format_uses(source: str) -> list[str]:
    """Every place `source` names gguf-py's reader or writer, as 'line: what'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name in FORMAT_MODULES]
        elif isinstance(node, ast.ImportFrom):
            from_format = (node.module or "") in FORMAT_MODULES
            names = [a.name for a in node.names if a.name in FORMAT_NAMES or from_format]
        elif isinstance(node, ast.Attribute):
            names = [node.attr] if node.attr in FORMAT_NAMES else []
        elif isinstance(node, ast.Name):
            names = [node.id] if node.id in FORMAT_NAMES else []
        else:
            names = []
        found += [f"{node.lineno}: {name}" for name in names]
    return found


def test_only_gguf_file_touches_the_format():
    others = [path for path in sorted(PACKAGE.rglob("*.py")) if path != PACKAGE / GATEWAY]
    assert len(others) > 10
    uses = {str(path.relative_to(PACKAGE)): format_uses(path.read_text()) for path in others}
    assert {name: found for name, found in uses.items() if found} == {}


def test_the_gateway_uses_both():
    """Control: the check sees gguf_file's own uses (so it is not vacuous)."""
    uses = format_uses((PACKAGE / GATEWAY).read_text())
    assert {u.split(": ")[1] for u in uses} == FORMAT_NAMES


@pytest.mark.parametrize(
    "source",
    [
        "import gguf\nr = gguf.GGUFReader(p)",
        "from gguf import GGUFWriter",
        "from gguf.gguf_reader import ReaderField",
        "import gguf.gguf_writer",
        "def f(w: 'x', v: gguf.GGUFWriter): pass",
    ],
)
def test_every_form_of_use_is_seen(source):
    assert format_uses(source)


def test_tables_are_allowed():
    assert format_uses("import gguf\nk = gguf.Keys.LLM.BLOCK_COUNT\nt = gguf.GGMLQuantizationType.F32") == []
