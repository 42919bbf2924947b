"""Files rys writes and reads: small files written atomically (beside the
target, then renamed over it), and TOML data files (probe suites, sweep
presets) read with a one-line error naming the file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

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


def read_toml(path) -> dict:
    """A TOML file's table; RysError naming the file when it cannot be read or parsed."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as e:
        raise RysError(f"cannot read {path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RysError(f"{path}: not valid TOML ({e})") from None
