"""Which server to run and with which arguments.

llama-server is found at --server-bin, $RYS_LLAMA_SERVER, on PATH or in the
project's own build (`make llama-server`). When none exists, llama-cpp-python's
own OpenAI server (`python -m llama_cpp.server`) is the fallback if its extra
dependencies are installed; it serves one request at a time and has no /props.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ...llamacpp import build as llama_build
from ...core.errors import RysError

DEFAULT_CTX = 4096  # tokens per slot: a probe prompt plus its answer, with room to spare

# Modules llama-cpp-python's server imports beyond llama_cpp itself (its [server] extra).
FALLBACK_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


# --------------------------------------------------------------- finding a server

def project_build() -> Path:
    """Where `make llama-server` puts the binary built for this machine."""
    return llama_build.tool_path("llama-server")


def _is_exe(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)


def find_server(explicit: str | None = None) -> Path:
    """The llama-server binary: --server-bin, $RYS_LLAMA_SERVER, PATH, the project build."""
    if explicit:
        p = Path(explicit).expanduser()
        if not _is_exe(p):
            raise RysError(f"--server-bin {explicit}: no such executable file")
        return p
    env = os.environ.get("RYS_LLAMA_SERVER")
    on_path = shutil.which("llama-server")  # Homebrew's `brew install llama.cpp` on a Mac
    # The Makefile sets RYS_LLAMA_SERVER to the project build even before it exists,
    # so a missing file there is not an error: the later places are still tried.
    for cand in (env, on_path, project_build()):
        if cand and _is_exe(Path(cand)):
            return Path(cand)
    looked = f"$RYS_LLAMA_SERVER ({env or 'unset'}), PATH, {project_build()}"
    raise RysError(f"no llama-server found (looked at {looked}); build it with `make llama-server` "
                   "in the rys checkout, `brew install llama.cpp` on a Mac, or pass --server-bin PATH")


def fallback_missing() -> list[str]:
    """Modules llama-cpp-python's server needs that are not importable here."""
    return [m for m in FALLBACK_MODULES if importlib.util.find_spec(m) is None]


@dataclass(frozen=True)
class Launcher:
    """How to start a server: llama-server, or llama-cpp-python's server as the fallback."""

    kind: str  # "llama-server" or "llama-cpp-python"
    command: tuple[str, ...]
    note: str | None = None  # a warning the CLI shows


def resolve_launcher(explicit: str | None = None) -> Launcher:
    """llama-server if there is one, else the llama-cpp-python fallback, else RysError."""
    try:
        return Launcher("llama-server", (str(find_server(explicit)),))
    except RysError as exc:
        if explicit:
            raise
        missing = fallback_missing()
        if missing:
            raise RysError(f"{exc}; the fallback, llama-cpp-python's own server, needs "
                           f"{', '.join(missing)} (pip install 'llama-cpp-python[server]')") from None
        return Launcher("llama-cpp-python", (sys.executable, "-m", "llama_cpp.server"),
                        note="no llama-server found; using llama-cpp-python's server, which answers one "
                             "request at a time (run `make llama-server` for the real one)")


# --------------------------------------------------------------- default arguments

def physical_cores() -> int:
    """Physical cores this process may use: token generation is memory-bound, so
    hyper-threads slow llama.cpp down rather than help."""
    if sys.platform == "darwin":
        out = subprocess.run(["sysctl", "-n", "hw.physicalcpu"], capture_output=True, text=True)
        return int(out.stdout) if out.returncode == 0 and out.stdout.strip().isdigit() else os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return usable
    # One block per logical CPU; SMT siblings share a (physical id, core id) pair.
    cores = set()
    for block in text.split("\n\n"):
        ids = dict(re.findall(r"^(physical id|core id)\s*:\s*(\d+)", block, re.MULTILINE))
        if ids:
            cores.add((ids.get("physical id"), ids.get("core id")))
    return max(1, min(usable, len(cores) or usable))


def metal() -> bool:
    """Apple silicon: llama.cpp's Metal backend runs every layer on the GPU."""
    return sys.platform == "darwin" and platform.machine() == "arm64"


def default_args(model: str | Path, ctx: int = DEFAULT_CTX, slots: int = 1, threads: int | None = None) -> list[str]:
    """llama-server's arguments for MODEL, without host and port.

    `ctx` is the context of one slot; llama-server splits -c evenly over its
    -np slots, so -c is ctx * slots.
    """
    return [
        "-m", str(model),
        "-c", str(ctx * slots),
        "-np", str(slots),  # one slot per concurrent probe request
        "-t", str(threads or physical_cores()),
        "-ngl", "99" if metal() else "0",  # all layers on Metal; the CPU build has no GPU
        "--jinja",  # the model's own chat template, so chat_template_kwargs (enable_thinking) work
        "--no-webui",  # rys only talks JSON
    ]


def fallback_args(model: Path, ctx: int, threads: int | None, host: str, port: int) -> list[str]:
    return ["--model", str(model), "--n_ctx", str(ctx), "--n_threads", str(threads or physical_cores()),
            "--n_gpu_layers", "-1" if metal() else "0", "--host", host, "--port", str(port)]


def server_env(kind: str) -> dict[str, str]:
    """The server's environment: ours, with ggml's gdb backtrace off (on an
    assertion ggml attaches gdb: slow, it can hang where ptrace is restricted,
    and it buries the assertion line), and for llama-cpp-python's server
    without variables its settings would read (pydantic reads every field, any
    case, from the environment: CACHE=/some/dir became its `cache` flag)."""
    env = {**os.environ, "GGML_NO_BACKTRACE": "1"}
    if kind != "llama-server":
        from llama_cpp.server.settings import ModelSettings, ServerSettings

        fields = {name.lower() for cls in (ModelSettings, ServerSettings) for name in cls.model_fields}
        env = {k: v for k, v in env.items() if k.lower() not in fields}
    return env
