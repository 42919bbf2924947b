"""Child processes that rys always stops, whatever happens.

A server runs in its own process group (so a Ctrl-C in the terminal reaches
rys, which then stops it in order) and is stopped on normal exit, on any
exception, on KeyboardInterrupt, on SIGTERM/SIGHUP and at interpreter exit.
Because none of those run when rys itself is killed with SIGKILL, every
server also has a tiny "reaper" process (REAPER) that waits on a pipe from
rys and kills the server's group when that pipe closes.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import threading

STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL

_live: set = set()  # children (anything with a stop() method) started by this process and not yet stopped


def track(child) -> None:
    """Stop `child` (its stop() method) at exit or on SIGTERM/SIGHUP, until untracked."""
    _live.add(child)


def untrack(child) -> None:
    _live.discard(child)


def _stop_all() -> None:
    for child in list(_live):
        child.stop()


atexit.register(_stop_all)


def _stop_then_default(signum, frame) -> None:
    """Stop our servers, then die of the signal as the default action would have."""
    _stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def guard_signals() -> None:
    """Clean up on SIGTERM/SIGHUP when nobody else handles them.

    A handler the program installed itself (rys's CLI turns SIGTERM into
    KeyboardInterrupt) is left alone: it unwinds through `with LlamaServer`.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _stop_then_default)


# Reads the server's process-group id, then blocks until the pipe from rys
# closes. "done" first means rys stopped the server itself; a bare end of file
# means rys died (the kernel closes the pipe even after SIGKILL): kill the group.
REAPER = """
import os, signal, sys, time
line = sys.stdin.readline()
if line.strip() and sys.stdin.read() != "done":
    pgid = int(line)
    try:
        os.killpg(pgid, signal.SIGTERM)
        for _ in range(%d):
            time.sleep(0.1)
            os.killpg(pgid, 0)
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
""" % int(STOP_GRACE * 10)


def kill_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process group led by PROC, SIGKILL it after GRACE seconds, reap PROC."""
    pgid = proc.pid  # start_new_session made the server its group's leader
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    try:  # anything the server forked (the Python fallback may) dies with it
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
