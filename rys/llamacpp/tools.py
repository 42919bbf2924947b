"""llama.cpp's command-line tools (llama-quantize, llama-perplexity) and its
HF -> GGUF converter, run as child processes.

Each run writes everything the child prints to a log file in the cache's
logs/ folder. The log is removed when the caller's block ends without an
error and kept otherwise: a failure is one RysError with the line of the log
that says why (rys.llamacpp.child.telling_line) and the log's path, and so is
output the caller cannot parse. Ctrl-C stops the child.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

from . import build as llama_build
from ..core.errors import RysError
from .child import crash_hint, default_log_dir, log_tail, signal_name, telling_line

_ERROR_LINE = re.compile(r"^[\d.]+ E (.+)")  # llama.cpp's error level: "0.00.012.150 E perplexity: ..."
MAKE_INSTALL = "run `make install` (it builds llama.cpp's tools and fetches its source)"


def tool(name: str) -> Path:
    """A llama.cpp tool built by `make install` for this machine; RysError saying so when it is absent."""
    path = llama_build.tool_path(name)
    if not os.access(path, os.X_OK):
        raise RysError(f"{name} is not built for this machine (no {path}): {MAKE_INSTALL}")
    return path


def converter() -> Path:
    """llama.cpp's convert_hf_to_gguf.py from the pinned source; RysError saying so when it is absent."""
    path = llama_build.converter()
    if not path.is_file() or not (path.parent / "gguf-py").is_dir():
        raise RysError(f"llama.cpp's converter is not in the cache (no {path}): {MAKE_INSTALL}")
    return path


@contextlib.contextmanager
def run_log(name: str) -> Iterator[Path]:
    """A fresh log file for one run of `name`; removed when the block ends
    without an exception, kept (errors name it) otherwise."""
    folder = default_log_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(2)}.log"
    yield path
    path.unlink(missing_ok=True)


def run(argv: Sequence[str | os.PathLike], log: Path, what: str, env: dict | None = None,
        on_line: Callable[[str], None] | None = None,
        telling: Callable[[list[str]], str] = telling_line) -> str:
    """Run argv, its stdout and stderr into `log`; return that output.

    `what` names the run in errors ("llama-quantize on model.gguf").
    `on_line` sees each line as it comes (progress). A non-zero exit or a
    signal is a RysError with `telling(last lines of the log)` and its path.
    """
    argv = [str(a) for a in argv]
    with open(log, "wb") as out:
        out.write(("$ " + " ".join(argv) + "\n").encode())
        out.flush()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {}), "GGML_NO_BACKTRACE": "1"})
        try:
            for raw in proc.stdout:
                out.write(raw)
                if on_line is not None:
                    on_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
            code = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: do not leave the child running
                proc.kill()
                proc.wait()
    if code != 0:
        tail = log_tail(log, 60)
        if code < 0:
            raise RysError(f"{what} crashed ({signal_name(-code)}): {telling(tail)}; "
                           f"{crash_hint(-code)}; log: {log}")
        raise RysError(f"{what} failed (exit status {code}): {telling(tail)}; log: {log}")
    return log.read_text(encoding="utf-8", errors="replace")


def unparsable(what: str, missing: str, log: Path, hint: str = "") -> RysError:
    """The error for a run that ended well but did not print what rys looks for:
    its first error-level line when it logged one (llama-perplexity exits 0 on
    a text too short for the context), else `hint`, and the log's path."""
    errors = [m[1] for line in log_tail(log, 200) if (m := _ERROR_LINE.match(line.strip()))]
    why = errors[0] if errors else hint or "a llama.cpp version rys does not know?"
    return RysError(f"{what} printed no {missing} ({why}); log: {log}")
