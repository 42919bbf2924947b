"""Run llama.cpp's llama-server as a child process that rys always stops.

    with LlamaServer(model, log_path=folder / "server.log", slots=4) as srv:
        requests.post(srv.base_url + "/v1/chat/completions", json=...)

The server runs in its own process group (so a Ctrl-C in the terminal
reaches rys, which then stops it in order) and is stopped on normal exit,
on any exception, on KeyboardInterrupt, on SIGTERM/SIGHUP and at
interpreter exit. Because none of those run when rys itself is killed with
SIGKILL, every server also has a tiny "reaper" process that waits on a pipe
from rys and kills the server's group when that pipe closes.

When no llama-server binary exists, llama-cpp-python's own OpenAI server
(`python -m llama_cpp.server`) is the fallback if its extra dependencies are
installed; it serves one request at a time and has no /props.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from . import llama_build, llama_child
from .errors import RysError

DEFAULT_CTX = 4096  # tokens per slot: a probe prompt plus its answer, with room to spare
READY_TIMEOUT = 300.0  # seconds; a multi-GB model read from a slow disk takes minutes
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
PORT_ATTEMPTS = 3  # an automatically chosen port can be taken between our check and the server's bind

# Modules llama-cpp-python's server imports beyond llama_cpp itself (its [server] extra).
FALLBACK_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")

_BIND_FAILED = re.compile(r"couldn't bind|address already in use", re.IGNORECASE)


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


def _fallback_args(model: Path, ctx: int, threads: int | None, host: str, port: int) -> list[str]:
    return ["--model", str(model), "--n_ctx", str(ctx), "--n_threads", str(threads or physical_cores()),
            "--n_gpu_layers", "-1" if metal() else "0", "--host", host, "--port", str(port)]


def _server_env(kind: str) -> dict[str, str]:
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


# --------------------------------------------------------------- ports

def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free right now on HOST."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port(host: str, port: int) -> None:
    """RysError if HOST:PORT cannot be listened on (bound the way llama-server binds it)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise RysError(_port_message(host, port, exc.strerror or str(exc))) from None


def _port_message(host: str, port: int, why: str = "already in use") -> str:
    return f"cannot listen on {host}:{port}: {why}; pick another port, or leave --port out for a free one"


def _client_host(host: str) -> str:
    """Where a client on this machine connects to a server bound to HOST."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


# --------------------------------------------------------------- stopping, whatever happens

_live: set["LlamaServer"] = set()  # started by this process and not yet stopped


def _stop_all() -> None:
    for srv in list(_live):
        srv.stop()


atexit.register(_stop_all)


def _stop_then_default(signum, frame) -> None:
    """Stop our servers, then die of the signal as the default action would have."""
    _stop_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _guard_signals() -> None:
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
_REAPER = """
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


def _kill_group(proc: subprocess.Popen, grace: float) -> None:
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


# --------------------------------------------------------------- the server

class ServerError(RysError):
    """The server died or never became ready; `log_tail` holds the last lines of its log."""

    def __init__(self, message: str, log_tail: list[str]):
        super().__init__(message)
        self.log_tail = log_tail


class LlamaServer:
    """llama-server (or the fallback) for one model, on 127.0.0.1 and a free port by default.

    `log_path`: the file that gets the server's stdout and stderr; None sends
    them to this process's stderr (for `rys serve` in a terminal).
    `extra_args` come after the defaults, so they override them.
    """

    def __init__(self, model: str | Path, *, log_path: str | Path | None, port: int | None = None,
                 host: str = "127.0.0.1", slots: int = 1, ctx: int = DEFAULT_CTX, threads: int | None = None,
                 server_bin: str | None = None, extra_args: list[str] | tuple[str, ...] = (),
                 ready_timeout: float = READY_TIMEOUT):
        self.model = Path(model).expanduser().resolve()
        if not self.model.is_file():
            raise RysError(f"{model}: no such file")
        if slots < 1 or ctx < 1:
            raise RysError(f"slots and ctx must be at least 1 (got slots={slots}, ctx={ctx})")
        self.log_path = Path(log_path) if log_path is not None else None
        self.host, self.port = host, port
        self._explicit_port = port is not None
        self.slots, self.ctx, self.threads = slots, ctx, threads
        self.extra_args = list(extra_args)
        self.ready_timeout = ready_timeout
        self.launcher = resolve_launcher(server_bin)
        self.props: dict = {}
        self._proc: subprocess.Popen | None = None
        self._reaper: subprocess.Popen | None = None
        self._http = requests.Session()
        self._http.trust_env = False  # never send localhost requests through an http_proxy

    # -- public

    @property
    def base_url(self) -> str:
        return f"http://{_client_host(self.host)}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def __enter__(self) -> "LlamaServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and return when it answers /health with 200."""
        if self._proc is not None:
            return
        if self._explicit_port:
            check_port(self.host, self.port)
        _guard_signals()
        try:
            for _ in range(1 if self._explicit_port else PORT_ATTEMPTS):
                if not self._explicit_port:
                    self.port = free_port(self.host)
                self._spawn()
                if self._wait_ready():
                    break
                self.stop()  # the port was taken between free_port() and the server's bind
            else:
                raise RysError(_port_message(self.host, self.port))
            self.props = self._read_props()
        except BaseException:  # KeyboardInterrupt and SIGTERM-as-interrupt included
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server's whole process group; safe to call twice."""
        proc, reaper = self._proc, self._reaper
        self._proc = self._reaper = None
        _live.discard(self)
        if proc is not None:
            _kill_group(proc, STOP_GRACE)
        if reaper is not None:
            try:  # "done": the group is gone, nothing for the reaper to kill
                reaper.stdin.write("done")
                reaper.stdin.close()
            except BrokenPipeError:  # the reaper is gone already
                pass
            try:
                reaper.wait(timeout=STOP_GRACE + 2)
            except subprocess.TimeoutExpired:
                reaper.kill()
                reaper.wait()

    def alive(self) -> bool:
        """True while the server process runs (a sweep checks this when requests fail)."""
        return self._proc is not None and self._proc.poll() is None

    def wait(self) -> int:
        """Block until the server exits by itself; its exit status."""
        if self._proc is None:
            raise RysError("the server is not running")
        return self._proc.wait()

    def log_tail(self, n: int = 20) -> list[str]:
        """The last N lines of the server's log ([] when it goes to the terminal)."""
        return llama_child.log_tail(self.log_path, n)

    # -- internals

    def _command(self) -> list[str]:
        if self.launcher.kind == "llama-server":
            args = default_args(self.model, self.ctx, self.slots, self.threads)
            args += ["--host", self.host, "--port", str(self.port)]
        else:
            args = _fallback_args(self.model, self.ctx, self.threads, self.host, self.port)
        return [*self.launcher.command, *args, *self.extra_args]

    def _spawn(self) -> None:
        # The reaper starts first and learns the group id afterwards, so there is
        # no moment in which a server runs without one.
        self._reaper = subprocess.Popen([sys.executable, "-I", "-S", "-c", _REAPER], stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True, text=True)
        cmd = self._command()
        env = _server_env(self.launcher.kind)
        try:
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.log_path, "wb") as log:  # the child keeps its own copy of the descriptor
                    self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, env=env,
                                                  stderr=subprocess.STDOUT, start_new_session=True)
            else:  # everything to our stderr, keeping our stdout for rys's own output
                self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=2, env=env,
                                              stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise RysError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None
        _live.add(self)
        self._reaper.stdin.write(f"{self._proc.pid}\n")
        self._reaper.stdin.flush()

    def _ready_path(self) -> str:
        # llama-server: 503 while loading, 200 when ready. The fallback binds its
        # port only after loading and has no /health.
        return "/health" if self.launcher.kind == "llama-server" else "/v1/models"

    def _wait_ready(self) -> bool:
        """True when ready; False if the port was taken; ServerError if it died or timed out."""
        deadline = time.monotonic() + self.ready_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                if any(_BIND_FAILED.search(line) for line in self.log_tail(40)):
                    if self._explicit_port:
                        raise RysError(_port_message(self.host, self.port))
                    return False
                raise self._exited(code, "before it was ready")
            try:
                status = self._http.get(self.base_url + self._ready_path(), timeout=2).status_code
            except requests.RequestException:
                status = None  # not listening yet
            if status == 200 and self._proc.poll() is None:
                return True
            if time.monotonic() > deadline:
                raise self._died(f"was not ready after {self.ready_timeout:.0f} s")
            time.sleep(0.1)

    def _read_props(self) -> dict:
        if self.launcher.kind != "llama-server":
            from llama_cpp import __version__ as version

            return {"build_info": f"llama-cpp-python {version}", "total_slots": 1,
                    "model_path": str(self.model), "chat_template": None}
        try:
            props = self._http.get(self.base_url + "/props", timeout=10).json()
        except (requests.RequestException, ValueError):
            raise self._died("answered /health but not /props") from None
        # Guards against a different server answering on this port.
        if props.get("model_path") != str(self.model):
            raise RysError(f"{self.base_url} serves {props.get('model_path')}, not {self.model}; "
                           "another server holds the port")
        return props

    def death(self) -> ServerError:
        """Why the server process is gone (it must have exited): status or signal, log line, advice."""
        return self._exited(self._proc.poll() if self._proc else None, "while answering")

    def _exited(self, code: int | None, when: str) -> ServerError:
        if code is not None and code < 0:  # killed by a signal: a crash inside llama.cpp, most likely
            return self._died(f"died of {llama_child.signal_name(-code)} {when}", hint=llama_child.crash_hint(-code))
        return self._died(f"exited (status {code}) {when}")

    def _died(self, what: str, hint: str | None = None) -> ServerError:
        tail = self.log_tail(30)
        where = f"log: {self.log_path}" if self.log_path else "its output is above"
        advice = f"; {hint}" if hint else ""
        cause = llama_child.telling_line(tail)
        return ServerError(f"{self.launcher.kind} for {self.model.name} {what}: {cause} ({where}){advice}", tail)
