"""Layer paths: parsing SPECs and naming them.

A layer path lists, for each layer of the new model, the index of the
original layer whose weights it runs. Notation (as in dnhkng/RYS):

- `I-J` duplicates the inclusive block I..J once, right after J:
  on 8 layers `2-4` gives 0 1 2 3 4 2 3 4 5 6 7.
- `I-J,K-L` applies several blocks one after another. Every block names
  layers of the original model, and its copy goes right after the last
  occurrence of its last layer in the path built so far:
  on 8 layers `1-2,5-6` gives 0 1 2 1 2 3 4 5 6 5 6 7.
- `path:0-30,27-30,31` spells the whole path as inclusive ranges (a range
  may run downwards, `5-3` is 5 4 3); this also deletes or reorders layers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.errors import RysError

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


@dataclass(frozen=True)
class Spec:
    text: str
    blocks: tuple[tuple[int, int], ...]  # duplicated blocks, empty for path: specs
    explicit: tuple[tuple[int, int], ...]  # ranges of a path: spec, empty otherwise

    @property
    def is_path(self) -> bool:
        return bool(self.explicit)

    @property
    def label(self) -> str:
        """Short name for file names and general.name: `rys_27-30`, `rys_1-2_5-6`, `rys_path_0-3_2-7`."""
        ranges = self.explicit or self.blocks
        body = "_".join(f"{a}-{b}" if a != b else f"{a}" for a, b in ranges)
        return f"rys_path_{body}" if self.is_path else f"rys_{body}"


def _ranges(text: str, what: str) -> list[tuple[int, int]]:
    parts = [p.strip() for p in text.split(",")]
    if not parts or any(not p for p in parts):
        raise RysError(f"malformed {what} '{text}': expected ranges like 27-30 separated by commas")
    out = []
    for part in parts:
        m = _RANGE.match(part)
        if not m:
            raise RysError(f"malformed range '{part}' in '{text}': expected I-J with whole numbers, like 27-30")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        out.append((a, b))
    return out


def parse(text: str) -> Spec:
    """Parse a SPEC string (no model needed; see `layer_path` for range checks)."""
    text = text.strip()
    if text.startswith("path:"):
        return Spec(text, (), tuple(_ranges(text[5:], "path")))
    blocks = _ranges(text, "block spec")
    for a, b in blocks:
        if a > b:
            raise RysError(f"block {a}-{b} runs backwards: a block is I-J with I <= J (use path: to reorder)")
    return Spec(text, tuple(blocks), ())


def single_block(text: str) -> tuple[int, int] | None:
    """(I, J) when TEXT is one block I-J (a sweep candidate), else None."""
    try:
        spec = parse(text)
    except RysError:
        return None
    return spec.blocks[0] if len(spec.blocks) == 1 else None


def layer_path(spec: Spec, n_layers: int) -> list[int]:
    """The layer path of `spec` on a model with `n_layers` trunk layers."""
    ranges = spec.explicit or spec.blocks
    for a, b in ranges:
        hi = max(a, b)
        if hi >= n_layers:
            raise RysError(f"range {a}-{b} is out of range: the model has layers 0-{n_layers - 1}")
    if spec.is_path:
        path = []
        for a, b in spec.explicit:
            step = 1 if b >= a else -1
            path.extend(range(a, b + step, step))
        return path
    path = list(range(n_layers))
    for a, b in spec.blocks:
        at = len(path) - 1 - path[::-1].index(b)  # last occurrence of the block's last layer
        path[at + 1:at + 1] = range(a, b + 1)
    return path


def describe(path: list[int]) -> str:
    """Compact text of a path: `0-30,27-30,31`."""
    if not path:
        return ""
    runs = [[path[0], path[0]]]
    for x in path[1:]:
        if x == runs[-1][1] + 1:
            runs[-1][1] = x
        else:
            runs.append([x, x])
    return ",".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)
