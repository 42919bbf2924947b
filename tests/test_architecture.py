"""The house plan of ARCHITECTURE.md holds: every module is in its table,
imports go only to modules above it, no module is over 400 lines, and every
package is installed."""

import ast
import re
from pathlib import Path

import pytest

from rys.files import tomllib

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 400
ROW = re.compile(r"^\| `rys/([\w/]+?)(?:\.py|/)` \|")


def table() -> list[str]:
    """Modules (or packages, as one unit) in the order of ARCHITECTURE.md's table: 'errors', 'suites', 'cli'."""
    rows = [m.group(1) for line in (REPO / "ARCHITECTURE.md").read_text().splitlines() if (m := ROW.match(line))]
    assert len(rows) == len(set(rows)), "a module is listed twice"
    return rows


def unit_of(path: Path) -> str:
    """The table entry a source file belongs to: rys/suites/core.py -> 'suites', rys/sweep.py -> 'sweep'."""
    rel = path.relative_to(REPO / "rys")
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def sources() -> list[Path]:
    return sorted(p for p in (REPO / "rys").rglob("*.py") if p.name != "__init__.py" or p.parent != REPO / "rys")


def imported_units(path: Path) -> set[str]:
    """The table entries a file imports (relative imports resolved; rys.__version__ is no module)."""
    package = path.relative_to(REPO).parent.parts  # ('rys',) or ('rys', 'suites')
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[:len(package) - node.level + 1])
            names = [node.module] if node.module else [a.name for a in node.names]
            found |= {".".join(base + [n]) for n in names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rys"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rys")}
    known = {unit_of(p) for p in sources()}
    return {parts[1] for parts in (name.split(".") for name in found) if len(parts) > 1 and parts[1] in known}


def test_every_module_is_in_the_table():
    listed = set(table())
    present = {unit_of(p) for p in sources()}
    assert present - listed == set(), "modules missing from ARCHITECTURE.md's table"
    assert listed - present == set(), "ARCHITECTURE.md lists modules that do not exist"


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_go_only_to_earlier_stages(path):
    order = {unit: i for i, unit in enumerate(table())}
    mine = unit_of(path)
    later = sorted(u for u in imported_units(path) if u != mine and order[u] > order[mine])
    assert later == [], f"{mine} imports {later}, listed after it in ARCHITECTURE.md"


def test_the_import_check_sees_imports():
    """The check itself: it resolves relative and absolute imports to table entries."""
    assert imported_units(REPO / "rys" / "results.py") == {"errors", "suites", "sweep_config"}
    assert "rank" in imported_units(REPO / "rys" / "cli" / "search.py")
    assert imported_units(REPO / "rys" / "errors.py") == set()


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_is_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_every_package_is_installed():
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {"rys." + ".".join(p.parent.relative_to(REPO / "rys").parts)
                for p in (REPO / "rys").rglob("__init__.py") if p.parent != REPO / "rys"} | {"rys"}
    mapped = set(setup["package-dir"])  # the data folders probes/ and sweeps/
    assert packages | mapped == set(setup["packages"])
    assert all((REPO / folder / "__init__.py").is_file() for folder in setup["package-dir"].values())
