"""Where a sweep builds its candidates: RAM-backed /dev/shm when it has room,
else a folder beside the results; folders of killed sweeps are cleaned up."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def scratch_folder(model_size: int, fallback: Path) -> Path:
    """RAM-backed /dev/shm when it has room for two candidates and memory to
    spare, else a folder under `fallback`. Folders left by sweeps that were
    killed (their pid is gone) are removed first: /dev/shm holds RAM."""
    shm = Path("/dev/shm")
    _remove_stale(shm)
    try:
        free = shutil.disk_usage(shm).free if shm.is_dir() else 0
    except OSError:
        free = 0
    prefix = f"rys-{os.getpid()}-"
    if free > 2.5 * model_size and _mem_available() > 3 * model_size:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=shm))
    fallback.mkdir(parents=True, exist_ok=True)
    _remove_stale(fallback)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=fallback))


def _remove_stale(folder: Path) -> None:
    if not folder.is_dir():
        return
    for d in folder.glob("rys-*-*"):
        try:
            pid = int(d.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if d.is_dir() and not _pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mem_available() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
