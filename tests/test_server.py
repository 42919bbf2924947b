"""rys.search.serving.server and `rys serve` against the real llama-server from `make llama-server`.

Every test that starts a server checks afterwards, with `ps`, that no process
of the server's group is left (zombies count as gone: only their parent can
reap them, and after a SIGKILL that parent is init).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from support import tiny_models
from support.processes import default_sigint
from rys.search.serving import launcher, reaper, server
from rys.llamacpp import child as llama_child
from rys.cli import cli
from rys.core.errors import RysError

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}  # children import this checkout's rys

try:
    SERVER_BIN = launcher.find_server(None)
except RysError:
    SERVER_BIN = None


def needs_server(test):
    """A test that starts a real llama-server: marked `server`, skipped where none is built."""
    skip = pytest.mark.skipif(SERVER_BIN is None, reason="no llama-server binary: run `make llama-server`")
    return pytest.mark.server(skip(test))


# ------------------------------------------------------------------ helpers

def processes() -> list[dict]:
    """Every process: pid, ppid, pgid, state, command line (ps works on Linux and macOS)."""
    out = subprocess.run(["ps", "-ww", "-A", "-o", "pid=,ppid=,pgid=,stat=,args="], capture_output=True, text=True,
                         check=True).stdout
    rows = []
    for line in out.splitlines():
        pid, ppid, pgid, stat, *args = line.split(None, 4)
        rows.append({"pid": int(pid), "ppid": int(ppid), "pgid": int(pgid), "stat": stat,
                     "args": args[0] if args else ""})
    return rows


def group_alive(pgid: int) -> bool:
    return any(p["pgid"] == pgid and not p["stat"].startswith("Z") for p in processes())


def pid_alive(pid: int) -> bool:
    return any(p["pid"] == pid and not p["stat"].startswith("Z") for p in processes())


def wait_gone(pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def spawned(monkeypatch):
    """Every process rys.search.serving.server starts during the test (servers and reapers)."""
    procs: list[subprocess.Popen] = []
    real = subprocess.Popen

    class Recording(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if args and args[0][0] != "ps":  # not the helpers' own `ps` calls
                procs.append(self)

    monkeypatch.setattr(server.subprocess, "Popen", Recording)
    yield procs
    for p in list(procs):  # the safety net of every test: nothing left running
        assert p.poll() is not None, f"process {p.pid} ({p.args[0]}) still running"
        assert not group_alive(p.pid), f"process group {p.pid} still has live members"


def servers(procs) -> list[subprocess.Popen]:
    return [p for p in procs if p.args[0] != sys.executable]


def busy_socket(listen: bool = True) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    if listen:
        s.listen()
    return s


def small(model, tmp_path, **kw) -> server.LlamaServer:
    """A server sized for 2 shared cores."""
    kw = {"log_path": tmp_path / "server.log", "threads": 1, "ctx": 256, **kw}
    return server.LlamaServer(model, **kw)


# ------------------------------------------------------------------ finding the binary

def _exe(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_find_server_order(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("RYS_CACHE", str(cache))
    built = launcher.project_build()
    assert built.is_relative_to(cache)
    built.parent.mkdir(parents=True)
    _exe(built)
    on_path = tmp_path / "path"
    on_path.mkdir()
    _exe(on_path / "llama-server")
    env_bin = _exe(tmp_path / "env-server")
    explicit = _exe(tmp_path / "explicit-server")
    monkeypatch.setenv("RYS_CACHE", str(cache))
    monkeypatch.setenv("PATH", str(on_path))
    monkeypatch.setenv("RYS_LLAMA_SERVER", str(env_bin))

    assert launcher.find_server(str(explicit)) == explicit
    assert launcher.find_server(None) == env_bin
    monkeypatch.setenv("RYS_LLAMA_SERVER", str(tmp_path / "not-built-yet"))  # as the Makefile sets it
    assert launcher.find_server(None) == on_path / "llama-server"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert launcher.find_server(None) == built
    with pytest.raises(RysError, match="--server-bin .*nope: no such executable file"):
        launcher.find_server(str(tmp_path / "nope"))


def test_no_server_anywhere(tmp_path, monkeypatch):
    monkeypatch.setenv("RYS_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("RYS_LLAMA_SERVER", raising=False)
    with pytest.raises(RysError, match=r"no llama-server found .*`make llama-server`"):
        launcher.find_server(None)

    monkeypatch.setattr(launcher, "fallback_missing", lambda: ["uvicorn", "fastapi"])
    with pytest.raises(RysError) as err:
        launcher.resolve_launcher(None)
    assert "`make llama-server`" in str(err.value)
    assert "needs uvicorn, fastapi (pip install 'llama-cpp-python[server]')" in str(err.value)

    monkeypatch.setattr(launcher, "fallback_missing", lambda: [])
    chosen = launcher.resolve_launcher(None)
    assert chosen.kind == "llama-cpp-python"
    assert chosen.command == (sys.executable, "-m", "llama_cpp.server")
    assert "one request at a time" in chosen.note
    with pytest.raises(RysError, match="no such executable"):  # an explicit binary never falls back
        launcher.resolve_launcher(str(tmp_path / "nope"))


def test_default_args(monkeypatch):
    monkeypatch.setattr(launcher, "metal", lambda: False)
    assert launcher.default_args("m.gguf", ctx=1024, slots=4, threads=3) == [
        "-m", "m.gguf", "-c", "4096", "-np", "4", "-t", "3", "-ngl", "0", "--jinja", "--no-webui"]
    monkeypatch.setattr(launcher, "metal", lambda: True)
    args = launcher.default_args("m.gguf", ctx=512, slots=1)
    assert args[args.index("-ngl") + 1] == "99"
    assert int(args[args.index("-t") + 1]) == launcher.physical_cores() >= 1


def test_bad_arguments_are_refused_before_starting(tmp_path, llama8):
    with pytest.raises(RysError, match="missing.gguf: no such file"):
        server.LlamaServer(tmp_path / "missing.gguf", log_path=None)
    with pytest.raises(RysError, match="slots and ctx must be at least 1"):
        server.LlamaServer(llama8, log_path=None, slots=0)


def test_reason_picks_the_cause():
    tail = ["0.00.007.796 I srv    load_model: loading model 'x.gguf'",
            "0.00.014.711 E llama_model_load: error loading model: tensor 'blk.7.x' not found",
            "0.00.014.795 E llama_model_load_from_file_impl: failed to load model",
            "0.00.018.848 E srv  llama_server: exiting due to model loading error"]
    assert llama_child.telling_line(tail) == "llama_model_load: error loading model: tensor 'blk.7.x' not found"
    usage = ["usage: ...", "error: invalid argument: --bogus", ""]
    assert llama_child.telling_line(usage) == "error: invalid argument: --bogus"
    assert llama_child.telling_line(["a", "last words"]) == "last words"
    assert llama_child.telling_line([]) == "no output"
    # an abort: the assertion, not gdb's or the loader's lines around it
    abort = ["0.01 E llama_model_load: error loading model", "x.cpp:1328: GGML_ASSERT(n > 0) failed",
             "No such file or directory."]
    assert llama_child.telling_line(abort) == "x.cpp:1328: GGML_ASSERT(n > 0) failed"


# ------------------------------------------------------------------ the real server

@needs_server
def test_serves_smollm2(smollm2, tmp_path, spawned):
    with small(smollm2, tmp_path, slots=2) as srv:
        assert srv.base_url == f"http://127.0.0.1:{srv.port}"
        pid = srv.pid
        assert os.getpgid(pid) == pid  # its own process group
        assert requests.get(srv.base_url + "/health", timeout=5).status_code == 200
        r = requests.post(srv.base_url + "/v1/chat/completions", timeout=60, json={
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 12, "temperature": 0})
        assert r.status_code == 200
        assert r.json()["choices"][0]["message"]["content"].strip()
        assert srv.props["total_slots"] == 2
        assert srv.props["model_path"] == str(smollm2.resolve())
        assert srv.props["build_info"] and "{%" in srv.props["chat_template"]
        assert srv.props["default_generation_settings"]["n_ctx"] == 256  # per slot: -c is ctx * slots
        assert any("listening on" in line for line in srv.log_tail(50))
        assert srv.alive()
    assert srv.pid is None and not srv.alive()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    assert len(servers(spawned)) == 1 and len(spawned) == 2  # one server, one reaper
    with pytest.raises(requests.ConnectionError):
        requests.get(srv.base_url + "/health", timeout=2)


@needs_server
def test_model_that_cannot_load(tmp_path, spawned):
    # Qwen3.5 with a 3-layer block and only the period: position 7 should be
    # full attention but holds a DeltaNet layer, which llama.cpp refuses.
    bad = tiny_models.write_model(tmp_path / "bad.gguf", "qwen35", 8, layer_path=[0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 7])
    with pytest.raises(server.ServerError) as err:
        with small(bad, tmp_path):
            pytest.fail("the server should not get ready")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("llama-server for bad.gguf exited (status 1) before it was ready: ")
    assert "error loading model" in msg and "blk.7." in msg
    assert msg.endswith(f"(log: {tmp_path / 'server.log'})")
    assert any("exiting due to model loading error" in line for line in err.value.log_tail)
    assert len(servers(spawned)) == 1


@needs_server
def test_bad_extra_argument(llama8, tmp_path, spawned):
    with pytest.raises(server.ServerError, match="invalid argument: --no-such-flag"):
        small(llama8, tmp_path, extra_args=["--no-such-flag"]).start()


@needs_server
def test_explicit_port_in_use(llama8, tmp_path, spawned):
    with busy_socket() as s:
        port = s.getsockname()[1]
        with pytest.raises(RysError, match=f"cannot listen on 127.0.0.1:{port}: .*leave --port out"):
            small(llama8, tmp_path, port=port).start()
    assert spawned == []  # refused before anything started


@needs_server
def test_explicit_port_taken_after_the_check(llama8, tmp_path, spawned, monkeypatch):
    # The port is free when checked but taken when llama-server binds: its log says so.
    monkeypatch.setattr(server, "check_port", lambda host, port: None)
    with busy_socket(listen=False) as s:
        port = s.getsockname()[1]
        with pytest.raises(RysError, match=f"cannot listen on 127.0.0.1:{port}: already in use"):
            small(llama8, tmp_path, port=port).start()
    assert len(servers(spawned)) == 1


@needs_server
def test_automatic_port_retries(llama8, tmp_path, spawned, monkeypatch):
    with busy_socket(listen=False) as s:
        busy = s.getsockname()[1]
        ports = iter([busy, server.free_port()])
        monkeypatch.setattr(server, "free_port", lambda host: next(ports))
        with small(llama8, tmp_path) as srv:
            assert srv.port != busy
            assert requests.get(srv.base_url + "/health", timeout=5).status_code == 200
    first, second = servers(spawned)
    assert first.returncode == 1 and second.returncode is not None


@needs_server
def test_keyboard_interrupt_inside_with(llama8, tmp_path, spawned):
    with pytest.raises(KeyboardInterrupt):
        with small(llama8, tmp_path) as srv:
            pid = srv.pid
            raise KeyboardInterrupt
    assert not group_alive(pid)


@needs_server
def test_alive_sees_a_server_that_died(llama8, tmp_path, spawned):
    with small(llama8, tmp_path) as srv:
        os.kill(srv.pid, signal.SIGKILL)
        srv._proc.wait()
        assert not srv.alive()


@needs_server
def test_interrupt_while_loading(llama8, tmp_path, spawned, monkeypatch):
    def interrupted(self):
        raise KeyboardInterrupt  # as if Ctrl-C came while polling /health

    monkeypatch.setattr(server.LlamaServer, "_wait_ready", interrupted)
    with pytest.raises(KeyboardInterrupt):
        small(llama8, tmp_path).start()
    assert len(servers(spawned)) == 1


def test_stubborn_server_is_killed_with_its_children(llama8, tmp_path, spawned, monkeypatch):
    # A "server" that ignores SIGTERM, never answers, and has a child of its own.
    fake = tmp_path / "fake-server"
    fake.write_text("#!/bin/sh\ntrap '' TERM\nsleep 60 &\nsleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setattr(reaper, "STOP_GRACE", 0.3)
    t0 = time.monotonic()
    with pytest.raises(server.ServerError, match=r"for llama8.gguf was not ready after 1 s"):
        small(llama8, tmp_path, server_bin=str(fake), ready_timeout=1).start()
    assert time.monotonic() - t0 < 5
    assert servers(spawned)[0].returncode == -signal.SIGKILL


def test_binary_that_cannot_run(llama8, tmp_path, spawned):
    not_a_program = tmp_path / "llama-server"
    not_a_program.write_bytes(b"\x7fELF garbage")
    not_a_program.chmod(0o755)
    with pytest.raises(RysError, match=f"cannot run {not_a_program}: Exec format error"):
        small(llama8, tmp_path, server_bin=str(not_a_program)).start()


CHILD = textwrap.dedent("""
    import json, sys, time
    from rys.search.serving.server import LlamaServer
    with LlamaServer(sys.argv[1], log_path=sys.argv[2], threads=1, ctx=256) as srv:
        print(json.dumps({"pid": srv.pid}), flush=True)
        time.sleep(60)
""")


def _child_with_server(llama8, tmp_path) -> tuple[subprocess.Popen, int]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(llama8), str(tmp_path / "child.log")],
                             stdout=subprocess.PIPE, text=True, env=ENV)
    line = child.stdout.readline()
    assert line, f"the child did not start a server: {(tmp_path / 'child.log').read_text()[-500:]}"
    pid = json.loads(line)["pid"]
    assert pid_alive(pid)
    return child, pid


def _reapers_of(child_pid: int) -> list[int]:
    return [p["pid"] for p in processes() if p["ppid"] == child_pid and " -I -S -c" in p["args"]]


@needs_server
def test_sigterm_to_the_python_process(llama8, tmp_path):
    child, pid = _child_with_server(llama8, tmp_path)
    reapers = _reapers_of(child.pid)
    assert len(reapers) == 1
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=15) == -signal.SIGTERM  # it still dies of SIGTERM...
    assert not group_alive(pid)  # ...but only after stopping its server itself
    assert not pid_alive(reapers[0])


@needs_server
def test_sigkill_to_the_python_process(llama8, tmp_path):
    child, pid = _child_with_server(llama8, tmp_path)
    child.kill()  # nothing in the child runs: the reaper must do it
    child.wait(timeout=5)
    assert wait_gone(pid, 10), "llama-server outlived the process that started it"


# ------------------------------------------------------------------ rys serve

def test_serve_cli_errors(llama8, tmp_path):
    r = CliRunner().invoke(cli, ["serve", str(llama8), "--server-bin", str(tmp_path / "nope")])
    assert r.exit_code == 1
    assert r.output == f"Error: --server-bin {tmp_path / 'nope'}: no such executable file\n"
    if SERVER_BIN is not None:
        with busy_socket() as s:
            port = s.getsockname()[1]
            r = CliRunner().invoke(cli, ["serve", str(llama8), "--port", str(port)])
        assert r.exit_code == 1
        assert r.output.startswith(f"Error: cannot listen on 127.0.0.1:{port}: ")


@needs_server
def test_serve_until_ctrl_c(smollm2, tmp_path):
    port = server.free_port()
    err = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "rys.cli", "serve", str(smollm2), "--port", str(port),
                             "--threads", "1", "--ctx", "256", "--", "--reasoning", "off"],
                            stdout=subprocess.PIPE, stderr=err, text=True, env=ENV, preexec_fn=default_sigint)
    try:
        first = proc.stdout.readline()
        assert first == (f"serving {smollm2.name} at http://127.0.0.1:{port}  "
                         f"(OpenAI API: http://127.0.0.1:{port}/v1; Ctrl-C stops)\n"), open(err.name).read()[-800:]
        assert '"enable_thinking": false' in proc.stdout.readline()
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        [srv] = [p for p in processes() if p["ppid"] == proc.pid and "llama-server" in p["args"]]
        assert "--reasoning off" in srv["args"]  # extra args reach llama-server
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err.seek(0)
    log = err.read()
    assert "listening on" in log  # llama-server's own output goes to stderr
    assert log.endswith("stopped\n")
    assert not group_alive(srv["pid"])
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)



@pytest.mark.server  # llama-cpp-python's server, a real one all the same
def test_fallback_server_answers_the_probes(smollm2, tmp_path, spawned, monkeypatch):
    """With no llama-server binary, llama-cpp-python's own server is started
    instead, with a warning, and the probes work against it in both modes."""
    from rys.search.probing import run_suites

    def no_binary(explicit=None):
        raise RysError("no llama-server found")

    monkeypatch.setattr(launcher, "find_server", no_binary)
    # Names its settings would read from the environment (`make test CACHE=...` exports CACHE).
    monkeypatch.setenv("CACHE", str(tmp_path))
    monkeypatch.setenv("N_CTX", "not a number")
    with small(smollm2, tmp_path, ctx=1024) as srv:
        assert srv.launcher.kind == "llama-cpp-python" and "one request at a time" in srv.launcher.note
        assert srv.props["model_path"] == str(smollm2.resolve())
        generated = run_suites(srv.base_url, "reasoning.navigation", limit=3, concurrency=1, n_boot=10)
        chosen = run_suites(srv.base_url, "reasoning.navigation", limit=3, mode="choice", concurrency=1, n_boot=10)
    assert not srv.alive()
    assert generated.summaries[0]["failed"] == 0 and generated.summaries[0]["parse_rate"] == 1.0
    assert all(r["completion_tokens"] > 0 for r in generated.rows)
    for row in chosen.rows:  # the first token's top log-probabilities came back and name an option
        assert row["error"] is None and row["option_probs"] and row["extracted"] in ("Yes", "No")
