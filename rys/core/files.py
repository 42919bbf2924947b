"""Files rys writes and reads: files and folders written atomically (built
beside the target, then renamed over it), and TOML data files (probe suites, sweep
presets) read with a one-line error naming the file."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
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
    tmp = _beside(path)
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


@contextlib.contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """Yield an empty folder beside `out` that becomes `out` when the block
    ends without an exception (Ctrl-C included); otherwise it is removed.

    An existing `out` is replaced only at that last moment.
    """
    tmp = _beside(out)
    old = tmp.with_suffix(".rys-old")
    try:
        tmp.mkdir(parents=True)
    except OSError as e:
        raise RysError(f"cannot write {out}: {e.strerror}") from None
    try:
        yield tmp
        if out.exists():
            os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            if old.exists():
                os.replace(old, out)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _beside(path: Path) -> Path:
    """A fresh temporary name in the folder of `path` (renames there are atomic)."""
    return path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.rys-tmp"


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
