"""A crash inside llama.cpp never takes rys down.

The crashes here are real: a native NULL dereference (SIGSEGV) in the child,
and llama.cpp's own GGML_ASSERT aborting (SIGABRT) on a model with more than
its LLAMA_MAX_LAYERS = 512 layers: the same paths a SIGSEGV in an AMX kernel
takes on an AMX Xeon."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from support import tiny_models
from rys.llamacpp import child as llama_child
from rys.cli import cli
from rys.core.errors import RysError

SMALL = tiny_models.Dims(n_embd=16, n_ff=32, n_head=2, n_head_kv=1, head_dim=8)


def _segfault(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    ctypes.string_at(0)  # reads address 0: SIGSEGV in native code


def _raise_rys() -> None:
    raise RysError("the file is not a model")


def _raise_bug() -> None:
    raise ValueError("a bug in rys")


def _array(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64).reshape(-1, 4)


def test_results_come_back():
    got = llama_child.call(_array, 4096, what="on nothing")
    assert np.array_equal(got, _array(4096))


def test_native_crash_is_one_error_with_signal_log_and_advice(tmp_path):
    log = tmp_path / "x.log"
    with pytest.raises(RysError) as exc:
        llama_child.call(_segfault, "warming up the model", what="on m.gguf", log=log)
    msg = str(exc.value)
    assert msg.startswith("llama.cpp crashed on m.gguf (SIGSEGV): warming up the model; ")
    assert "AMX" in msg and "--no-repack" in msg and msg.endswith(f"log: {log}")
    assert "warming up the model" in log.read_text()


def test_default_log_is_kept_only_after_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("RYS_CACHE", str(tmp_path))
    llama_child.call(_array, 8, what="on nothing")
    assert list((tmp_path / "logs").glob("*.log")) == []
    with pytest.raises(RysError, match=r"log: .*\.log$"):
        llama_child.call(_segfault, "x", what="on nothing")
    assert len(list((tmp_path / "logs").glob("*.log"))) == 1


def test_errors_cross_back_and_bugs_keep_their_traceback():
    with pytest.raises(RysError, match="^the file is not a model$"):
        llama_child.call(_raise_rys, what="on nothing")
    with pytest.raises(RuntimeError, match="(?s)Traceback.*ValueError: a bug in rys"):
        llama_child.call(_raise_bug, what="on nothing")


@pytest.fixture(scope="module")
def too_deep(tmp_path_factory):
    """A tiny llama of 520 layers: llama.cpp aborts in load_hparams (GGML_ASSERT, 512 at most)."""
    return tiny_models.write_model(tmp_path_factory.mktemp("deep") / "deep.gguf", "llama", 520, dims=SMALL)


def test_rys_verify_survives_a_llama_cpp_abort(too_deep, tmp_path, monkeypatch):
    monkeypatch.setenv("RYS_CACHE", str(tmp_path))
    r = CliRunner().invoke(cli, ["verify", str(too_deep)])
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert len(lines) == 1, r.output
    assert lines[0].startswith("Error: llama.cpp crashed on deep.gguf (SIGABRT): ")
    assert "GGML_ASSERT" in lines[0] and "n_layer_all" in lines[0]
    assert os.path.exists(lines[0].rsplit("log: ", 1)[1])


@pytest.fixture(scope="module")
def deep300(tmp_path_factory):
    """300 layers load; a candidate repeating 256 of them (556 layers) makes llama.cpp abort."""
    return tiny_models.write_model(tmp_path_factory.mktemp("deep300") / "d300.gguf", "llama", 300, dims=SMALL)


@pytest.mark.slow  # 10-100 s on 2 cores (a 300-layer candidate)
@pytest.mark.server
@pytest.mark.parametrize("prefilter", [[], ["--prefilter", "kl", "--kl-threshold", "1000"]],
                         ids=["server-start", "kl-prefilter"])
def test_sweep_records_a_crashing_candidate_and_goes_on(deep300, tmp_path, prefilter):
    from rys.search.results import Store

    out = tmp_path / "s"
    r = CliRunner().invoke(cli, ["sweep", str(deep300), "--blocks", "0-255,0-1", *prefilter,
                                 "--suite", "reasoning.navigation", "--limit", "1", "--threads", "1",
                                 "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    with Store(out) as store:
        got = {c.candidate: (c.status, c.reason or "") for c in store.candidates()}
    assert got["baseline"][0] == "ok" and got["0-1"][0] == "ok"
    status, reason = got["0-255"]
    assert status == "failed"
    assert "SIGABRT" in reason and "GGML_ASSERT" in reason, reason
    assert ("llama.cpp crashed" in reason) == bool(prefilter)
    left = subprocess.run(["pgrep", "-f", "llama-server.*d300"], capture_output=True, text=True).stdout
    assert left == ""  # no server left behind
