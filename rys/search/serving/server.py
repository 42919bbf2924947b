"""Run llama.cpp's llama-server as a child process that rys always stops.

    with LlamaServer(model, log_path=folder / "server.log", slots=4) as srv:
        requests.post(srv.base_url + "/v1/chat/completions", json=...)

Which binary and which arguments: rys.search.serving.launcher. Stopping it whatever
happens (signals, exit, SIGKILL of rys): rys.search.serving.reaper.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from ...llamacpp import child as llama_child
from . import reaper
from ...core.errors import RysError
from .launcher import DEFAULT_CTX, default_args, fallback_args, resolve_launcher, server_env

READY_TIMEOUT = 300.0  # seconds; a multi-GB model read from a slow disk takes minutes
PORT_ATTEMPTS = 3  # an automatically chosen port can be taken between our check and the server's bind

_BIND_FAILED = re.compile(r"couldn't bind|address already in use", re.IGNORECASE)


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
        reaper.guard_signals()
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
        proc, guard = self._proc, self._reaper
        self._proc = self._reaper = None
        reaper.untrack(self)
        if proc is not None:
            reaper.kill_group(proc, reaper.STOP_GRACE)
        if guard is not None:
            try:  # "done": the group is gone, nothing for the reaper to kill
                guard.stdin.write("done")
                guard.stdin.close()
            except BrokenPipeError:  # the reaper is gone already
                pass
            try:
                guard.wait(timeout=reaper.STOP_GRACE + 2)
            except subprocess.TimeoutExpired:
                guard.kill()
                guard.wait()

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
            args = fallback_args(self.model, self.ctx, self.threads, self.host, self.port)
        return [*self.launcher.command, *args, *self.extra_args]

    def _spawn(self) -> None:
        # The reaper starts first and learns the group id afterwards, so there is
        # no moment in which a server runs without one.
        self._reaper = subprocess.Popen([sys.executable, "-I", "-S", "-c", reaper.REAPER], stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True, text=True)
        cmd = self._command()
        env = server_env(self.launcher.kind)
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
        reaper.track(self)
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
