"""Small files written atomically: beside the target, then renamed over it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import RysError


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that an interruption never leaves half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise RysError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
