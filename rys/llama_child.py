"""Run llama-cpp-python in a child process.

llama.cpp is C++: a bad kernel (the AMX SIGSEGV of llama.cpp #20824), a
binary built for another CPU (SIGILL) or an abort on a strange file kills the
process it runs in. rys loads models in-process for `rys verify`, the KL
prefilter and reference logits; run there, such a crash would take rys down
with every llama-server it supervises. Here the work runs in a child: a crash
becomes one RysError that names the signal and the last line of llama.cpp's
log, which is kept on disk.

`call(fn, *args, what=...)` runs the module-level function `fn` in a child and
returns its (picklable) result. Inside the child, llama.cpp's log goes line by
line to the log file and to `log_lines()`, which `fn` may read.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import re
import signal
import sys
import time
import traceback
from pathlib import Path

from .errors import RysError

_lines: list[str] = []  # in the child: llama.cpp's log so far


def log_lines() -> list[str]:
    """In the child: every line llama.cpp has logged so far (debug level included)."""
    return _lines


def crash_hint(signum: int) -> str:
    """What to try after llama.cpp died of `signum`."""
    if signum == signal.SIGILL:
        return ("the binary uses instructions this CPU lacks (built on another machine?): "
                "run `make install` again on this machine")
    if signum in (signal.SIGSEGV, signal.SIGBUS):
        return ("if this CPU has AMX (most Intel Xeons), rebuild without AMX with `make install` "
                "(llama.cpp #20824) or pass --no-repack to llama-server; else the file may be malformed")
    if signum == signal.SIGABRT:
        return "llama.cpp rejected something in the file; the log says what"
    return "see the log"


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


_TELLING = re.compile(r"GGML_ASSERT|GGML_ABORT|error|failed|fatal", re.IGNORECASE)


def last_log_line(path: Path, n_bytes: int = 16 * 1024) -> str:
    """The line of a log's tail that says most: the last assertion or error line,
    else the last non-empty line; '' when there is none."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - n_bytes))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    telling = [ln for ln in lines if _TELLING.search(ln)]
    return (telling or lines or [""])[-1]


def _install_log(log_file) -> None:
    """Send llama.cpp's log lines to `log_file` (flushed per line) and to _lines."""
    import llama_cpp

    partial = [""]

    @llama_cpp.llama_log_callback
    def _callback(level, text, user_data):
        partial[0] += text.decode("utf-8", errors="replace")
        while "\n" in partial[0]:
            line, partial[0] = partial[0].split("\n", 1)
            _lines.append(line)
            log_file.write(line + "\n")
            log_file.flush()

    _install_log.callback = _callback  # C keeps only a pointer: keep the object alive
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


def _child(conn, fn, args, kwargs, log_path: str) -> None:
    # Run llama-cpp-python with verbose=True there: its quiet mode sends fds 1 and 2
    # to /dev/null while loading, which would lose the GGML_ASSERT line of an abort.
    # ggml's abort handler would attach gdb for a backtrace: slow, and it can
    # hang where ptrace is restricted. The assertion line is in the log anyway.
    os.environ["GGML_NO_BACKTRACE"] = "1"
    with open(log_path, "a", encoding="utf-8", errors="replace") as log_file:
        # Whatever C code prints straight to stdout/stderr goes to the log too.
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        try:
            _install_log(log_file)
            reply = ("ok", fn(*args, **kwargs))
        except RysError as exc:
            reply = ("rys", str(exc))
        except BaseException:  # a bug: keep its traceback for the parent
            reply = ("bug", traceback.format_exc())
        conn.send(reply)
        conn.close()


def _context():
    # forkserver: children fork from a clean, single-threaded server (no copy of
    # our threads' locks), without re-importing numpy and llama_cpp each time.
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["numpy", "llama_cpp"])
        return ctx
    return multiprocessing.get_context("spawn")


def default_log_dir() -> Path:
    from .llama_build import cache_dir

    return cache_dir() / "logs"


def call(fn, *args, what: str, log: str | Path | None = None, **kwargs):
    """fn(*args, **kwargs) in a child process; RysError if llama.cpp crashes it.

    `what` completes "llama.cpp crashed ...", e.g. "loading model.gguf".
    `log`: where llama.cpp's log goes; by default a file in the cache's logs/
    folder that is kept only when something went wrong.
    """
    if log is None:
        folder = default_log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        log_path, keep = folder / f"llama-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log", False
    else:
        log_path, keep = Path(log), True
        log_path.parent.mkdir(parents=True, exist_ok=True)
    ctx = _context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, fn, args, kwargs, str(log_path)), daemon=True)
    crashed = False
    try:
        proc.start()
        send.close()
        try:
            reply = recv.recv()
        except EOFError:  # the child died without answering
            reply = None
        proc.join()
        if reply is None:
            crashed = True
            code = proc.exitcode
            if code is not None and code < 0:
                last = last_log_line(log_path)
                said = f"; last log line: {last}" if last else ""
                raise RysError(f"llama.cpp crashed {what} ({signal_name(-code)}){said}; "
                               f"{crash_hint(-code)}; log: {log_path}")
            raise RysError(f"llama.cpp's process exited (status {code}) {what} without an answer; "
                           f"log: {log_path}")
        kind, value = reply
        if kind == "rys":
            raise RysError(value)
        if kind == "bug":
            raise RuntimeError(f"in the llama.cpp child process:\n{value}")
        return value
    finally:
        recv.close()
        if proc.is_alive():  # interrupted while waiting: do not leave it running
            proc.kill()
            proc.join()
        if not keep and not crashed:
            log_path.unlink(missing_ok=True)
