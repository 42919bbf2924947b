"""Sweep presets: files of `rys sweep` options, named so a sweep can be cited.

A preset is a TOML file whose keys are `rys sweep` options with
underscores (block, stride, start, end, blocks, suite, limit, eq_revise,
...), plus a `description`. `rys sweep MODEL --preset NAME` takes
NAME.toml from ./sweeps/ or from the presets shipped with rys (the top-level
sweeps/ folder, installed as rys.sweeps); `--preset FILE.toml` names a file.
Options given on the command line win over the preset's.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import RysError
from ..core.files import read_toml


@dataclass
class Preset:
    name: str
    path: Path
    description: str
    options: dict  # option (as a SweepConfig field) -> value


def _folders() -> list[Path]:
    """Where NAME.toml is looked for: ./sweeps, then the shipped presets (once if they are the same)."""
    shipped = Path(str(importlib.resources.files("rys.sweeps")))
    here = Path("sweeps")
    return [shipped] if here.is_dir() and here.resolve() == shipped.resolve() else [here, shipped]


def available() -> list[str]:
    """Names of the presets found in the preset folders."""
    return sorted({p.stem for folder in _folders() if folder.is_dir() for p in folder.glob("*.toml")})


def find(name: str) -> Path:
    """The file of preset NAME, or NAME itself when it is a path to a .toml file."""
    if name.endswith(".toml") or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise RysError(f"--preset {name}: no such file")
        return path
    found = [folder / f"{name}.toml" for folder in _folders() if (folder / f"{name}.toml").is_file()]
    if not found:
        raise RysError(f"no sweep preset {name!r}; choose from {', '.join(available()) or 'none'}, "
                       "or give a FILE.toml")
    return found[0]


def load_preset(name: str) -> Preset:
    """Read a preset (its keys are checked against the options by the command that applies it)."""
    path = find(name)
    table = read_toml(path)
    description = table.pop("description", "")
    return Preset(path.stem, path, str(description), table)
