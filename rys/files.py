"""Files rys writes and reads: small files written atomically (beside the
target, then renamed over it), and TOML data files (probe suites, sweep
presets) read with a one-line error naming the file."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from .errors import RysError


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it becomes `path` only when the
    block ends without an exception (Ctrl-C included), else it is removed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RysError(f"cannot write {path}: {e.strerror}") from None
    # not created here: the writer creates it, with the permissions any new file gets
    tmp = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.rys-tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename durable where the OS allows it
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that an interruption never leaves half a file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_toml(path) -> dict:
    """A TOML file's table; RysError naming the file when it cannot be read or parsed."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as e:
        raise RysError(f"cannot read {path}: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RysError(f"{path}: not valid TOML ({e})") from None
