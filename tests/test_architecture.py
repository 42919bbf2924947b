"""The house plan of ARCHITECTURE.md holds: packages import only the packages
their row allows (the two pipelines never each other), within a package every
module imports only modules above it in that package's table, every module is
listed, no module is over 400 lines, and every package is installed."""

import ast
import re
from pathlib import Path

import pytest

from rys.core.files import tomllib

REPO = Path(__file__).resolve().parents[1]
RYS = REPO / "rys"
MAX_LINES = 400
PACKAGE_ROW = re.compile(r"^\| `rys/(\w+)/` \| ([^|]*) \| [^|]* \|$")
MODULE_ROW = re.compile(r"^\| `rys/(\w+/[\w/]+?)(?:\.py|/)` \| [^|]* \|$")
FACADES = ("__init__.py", "__main__.py")


def doc() -> list[str]:
    return (REPO / "ARCHITECTURE.md").read_text().splitlines()


def packages() -> dict[str, set[str]]:
    """Top-level packages in order, each with the packages it may import: {'core': set(), 'surgery': {...}}."""
    rows = [m.groups() for line in doc() if (m := PACKAGE_ROW.match(line))]
    return {name: {p.strip() for p in allowed.split(",") if p.strip() not in ("", "-")} for name, allowed in rows}


def table() -> list[str]:
    """Units in the order of ARCHITECTURE.md's tables: 'core/errors', 'search/suites', 'checkpoint/hf/names'."""
    rows = [m.group(1) for line in doc() if (m := MODULE_ROW.match(line))]
    assert len(rows) == len(set(rows)), "a module is listed twice"
    return rows


def unit_of(path: Path) -> str:
    """The table entry a file belongs to: rys/search/suites/core.py -> 'search/suites' (a package listed whole),
    rys/search/sweep.py -> 'search/sweep', rys/cli/__init__.py -> 'cli/__init__'."""
    rel = path.relative_to(RYS).with_suffix("")
    whole = {u for u in table() if (RYS / u).is_dir()}
    for i in range(1, len(rel.parts)):
        if "/".join(rel.parts[:i]) in whole:
            return "/".join(rel.parts[:i])
    return "/".join(rel.parts)


def sources() -> list[Path]:
    return sorted(p for p in RYS.rglob("*.py") if p.parent != RYS)


def is_facade(path: Path) -> bool:
    return path.name in FACADES and unit_of(path) not in table()


def imported_names(path: Path) -> set[str]:
    """Dotted rys names a file imports, relative imports resolved: {'rys.core.errors.RysError', 'rys.search'}."""
    package = path.relative_to(REPO).parent.parts  # ('rys', 'search') or ('rys', 'search', 'suites')
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[:len(package) - node.level + 1]) + ([node.module] if node.module else [])
            found |= {".".join(base + [a.name]) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "rys":
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "rys"}
    return found


def unit_of_name(name: str) -> str | None:
    """The unit a dotted name lives in ('rys.search.suites.core.Suite' -> 'search/suites'), None for
    rys.__version__ and for a package's own facade."""
    parts = name.split(".")[1:]
    for i in range(len(parts), 0, -1):
        stem = RYS.joinpath(*parts[:i])
        if stem.with_suffix(".py").is_file():
            return unit_of(stem.with_suffix(".py"))
        if stem.is_dir():
            return unit_of(stem / "__init__.py") if i > 1 else None
    return None


def imported_units(path: Path) -> set[str]:
    return {u for name in imported_names(path) if (u := unit_of_name(name)) is not None}


def top(unit: str) -> str:
    return unit.split("/")[0]


def test_every_module_is_in_the_table():
    listed = set(table())
    present = {unit_of(p) for p in sources() if not is_facade(p)}
    assert present - listed == set(), "modules missing from ARCHITECTURE.md's tables"
    assert listed - present == set(), "ARCHITECTURE.md lists modules that do not exist"
    assert {top(u) for u in present} == set(packages()), "packages missing from ARCHITECTURE.md's package table"


def test_each_package_lists_its_modules_under_its_own_heading():
    """The tables are grouped by package, in the package table's order."""
    order = list(packages())
    tops = [top(u) for u in table()]
    assert tops == sorted(tops, key=order.index)


def test_packages_may_import_only_earlier_packages():
    order = list(packages())
    for name, allowed in packages().items():
        assert all(order.index(a) < order.index(name) for a in allowed), f"{name} may import a later package"
    assert "checkpoint" not in packages()["search"] and "search" not in packages()["checkpoint"]


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_go_only_to_allowed_packages_and_earlier_modules(path):
    order = {unit: i for i, unit in enumerate(table())}
    mine = unit_of(path)
    allowed = packages()[top(mine)]
    bad = []
    for u in sorted(imported_units(path) - {mine}):
        if top(u) != top(mine):
            if top(u) not in allowed:
                bad.append(f"{u} (package {top(u)} is not in {top(mine)}'s row)")
        elif is_facade(path):
            continue  # a package's __init__ gathers its own modules
        elif u not in order or order[u] > order[mine]:
            bad.append(f"{u} (listed after it)")
    assert bad == [], f"{mine} imports {bad}"


def test_the_import_check_sees_imports():
    """The check itself: it resolves relative and absolute imports to table entries."""
    assert imported_units(RYS / "search" / "results.py") == {"core/errors", "search/suites", "search/sweep_config"}
    assert "search/ranking" in imported_units(RYS / "cli" / "search.py")
    assert imported_units(RYS / "core" / "errors.py") == set()
    assert "checkpoint/prune/per_layer" in imported_units(RYS / "cli" / "prune.py")  # a function-level import
    assert unit_of(RYS / "search" / "suites" / "eq.py") == "search/suites"


@pytest.mark.parametrize("path", sorted(RYS.rglob("*.py")), ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_is_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_rys_itself_holds_only_the_version():
    assert [p.name for p in RYS.glob("*.py")] == ["__init__.py"]
    assert imported_names(RYS / "__init__.py") == set()


def test_every_package_is_installed():
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {"rys." + ".".join(p.parent.relative_to(RYS).parts) for p in RYS.rglob("__init__.py") if p.parent != RYS}
    mapped = set(setup["package-dir"])  # the data folders probes/ and sweeps/
    assert found | {"rys"} | mapped == set(setup["packages"])
    assert all((REPO / folder / "__init__.py").is_file() for folder in setup["package-dir"].values())
