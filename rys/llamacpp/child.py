"""Run llama-cpp-python in a child process.

llama.cpp is C++: a bad kernel (the AMX SIGSEGV of llama.cpp #20824), a
binary built for another CPU (SIGILL) or an abort on a strange file kills the
process it runs in. rys loads models in-process for `rys verify`, the KL
prefilter and reference logits; run there, such a crash would take rys down
with every llama-server it supervises. Here the work runs in a child: a crash
becomes one RysError that names the signal and the last line of llama.cpp's
log, which is kept on disk.

`call(fn, *args, what=...)` runs the module-level function `fn` in a fresh
`python -m rys.llamacpp.child` and returns its (picklable) result. Inside the
child, llama.cpp's log goes line by line to the log file and to
`log_lines()`, which `fn` may read. (A plain subprocess rather than
multiprocessing: that would re-run the caller's main script in the child.)
"""

from __future__ import annotations

import ctypes
import os
import pickle
import re
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from ..core.errors import RysError

_lines: list[str] = []  # in the child: llama.cpp's log so far


def log_lines() -> list[str]:
    """In the child: every line llama.cpp has logged so far (debug level included)."""
    return _lines


def load_model(path: str, **kwargs):
    """In the child: llama_cpp.Llama for `path`, logging into the child's log;
    RysError with the error lines of that log when llama.cpp refuses the file."""
    import llama_cpp

    try:
        return llama_cpp.Llama(model_path=path, verbose=True, **kwargs)
    except (ValueError, RuntimeError):
        raise RysError(f"llama.cpp could not load {Path(path).name}: {_error_lines(_lines)}") from None


def _error_lines(lines: list[str]) -> str:
    bad = [ln.strip() for ln in lines if any(w in ln.lower() for w in ("error", "failed", "missing", "wrong"))]
    return "; ".join(bad[-2:]) if bad else "no reason given in llama.cpp's log"


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


_LOG_PREFIX = re.compile(r"^[\d.]+ ([DIWE]) ")  # llama-server's "0.00.014.711 E ": time and level
_ERROR_WORDS = re.compile(r"error|failed|not found|missing|invalid|unknown|no such", re.IGNORECASE)


def log_tail(path: Path | None, n: int = 30) -> list[str]:
    """The last N lines of a llama.cpp log ([] when there is none); reads only its end."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))  # a long-running log can be large
            return f.read().decode("utf-8", "replace").splitlines()[-n:]
    except (OSError, TypeError):
        return []


def telling_line(tail: list[str]) -> str:
    """The line of a llama.cpp log's tail that best says why it failed: a failed
    assertion, else llama.cpp's first error-level line (the cause comes before
    the consequences), else the first line with an error word, else the last line."""
    lines = [line.strip() for line in tail if line.strip()]
    asserts = [line for line in lines if "GGML_ASSERT" in line or "GGML_ABORT" in line]
    errors = [line for line in lines if (m := _LOG_PREFIX.match(line)) and m[1] == "E"]
    pick = (asserts or errors or [line for line in lines if _ERROR_WORDS.search(line)] or lines[-1:]
            or ["no output"])
    return _LOG_PREFIX.sub("", pick[0])


def _install_log() -> None:
    """Send llama.cpp's log lines to stderr (the log file) and to _lines."""
    import llama_cpp

    partial = [""]

    @llama_cpp.llama_log_callback
    def _callback(level, text, user_data):
        partial[0] += text.decode("utf-8", errors="replace")
        while "\n" in partial[0]:
            line, partial[0] = partial[0].split("\n", 1)
            _lines.append(line)
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    _install_log.callback = _callback  # C keeps only a pointer: keep the object alive
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


def _child_main() -> None:
    """`python -m rys.llamacpp.child`: read sys.path, then (fn, args, kwargs) as pickles on
    stdin; write (kind, value) as a pickle to the original stdout. stderr is the log."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # C code that prints to stdout must not corrupt the reply
    sys.path[:] = pickle.load(sys.stdin.buffer)
    try:
        fn, args, kwargs = pickle.load(sys.stdin.buffer)
        _install_log()
        reply = ("ok", fn(*args, **kwargs))
    except RysError as exc:
        reply = ("rys", str(exc))
    except BaseException:  # a bug: keep its traceback for the parent
        reply = ("bug", traceback.format_exc())
    with replies:
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)


def default_log_dir() -> Path:
    from .build import cache_dir

    return cache_dir() / "logs"


def call(fn, *args, what: str, log: str | Path | None = None, **kwargs):
    """fn(*args, **kwargs) in a child process; RysError if llama.cpp crashes it.

    `fn` must be a module-level function (it is pickled by name), its
    arguments and result picklable. `what` completes "llama.cpp crashed ...",
    e.g. "on model.gguf". `log`: where llama.cpp's log goes; by default a file
    in the cache's logs/ folder, kept only when the child crashed.
    """
    if log is None:
        folder = default_log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        log_path, keep = folder / f"llama-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log", False
    else:
        log_path, keep = Path(log), True
        log_path.parent.mkdir(parents=True, exist_ok=True)
    payload = (pickle.dumps(sys.path) + pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL))
    # Run llama-cpp-python with verbose=True in the child: its quiet mode sends
    # fds 1 and 2 to /dev/null while loading, which would lose an abort's
    # GGML_ASSERT line. On an assertion ggml would attach gdb for a backtrace:
    # slow, it can hang where ptrace is restricted; the assertion line suffices.
    env = {**os.environ, "GGML_NO_BACKTRACE": "1"}
    crashed = False
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "rys.llamacpp.child"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=log_file, env=env)
    try:
        out, _ = proc.communicate(payload)
        try:
            kind, value = pickle.loads(out)
        except Exception:  # no reply: the child died
            crashed = True
            code = proc.returncode
            if code < 0:
                raise RysError(f"llama.cpp crashed {what} ({signal_name(-code)}): "
                               f"{telling_line(log_tail(log_path))}; "
                               f"{crash_hint(-code)}; log: {log_path}") from None
            raise RysError(f"llama.cpp's process exited (status {code}) {what} without an answer; "
                           f"log: {log_path}") from None
        if kind == "rys":
            raise RysError(value)
        if kind == "bug":
            raise RuntimeError(f"in the llama.cpp child process:\n{value}")
        return value
    finally:
        if proc.poll() is None:  # interrupted while waiting: do not leave it running
            proc.kill()
            proc.wait()
        if not keep and not crashed:
            log_path.unlink(missing_ok=True)


if __name__ == "__main__":
    # Run as the module rys.llamacpp.child, not as __main__, so that the functions
    # the child calls see the same log_lines().
    from rys.llamacpp.child import _child_main as main

    main()
