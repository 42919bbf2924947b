"""The llama.cpp rys builds: AMX kernels compiled out on x86-64, builds keyed by CPU.

ggml's AMX kernels crash on Intel Xeons with AMX (llama.cpp #20824). Most
machines that run these tests have no AMX, so a native build there never
contains the kernels whatever the flags: the first test compiles ggml's AMX
source for an AMX CPU (-march=sapphirerapids) with rys's flags, which shows
on any x86-64 machine that the flags remove the kernels."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from rys.llamacpp import build as llama_build

X86 = platform.machine() in ("x86_64", "AMD64")
AMX_SYMBOL = "ggml_backend_amx_mul_mat"


def _ggml_source() -> Path:
    src = llama_build.cache_dir() / "src" / f"llama_cpp_python-{llama_build.LLAMA_CPP_PYTHON}" / "vendor" / "llama.cpp"
    if not (src / "ggml").is_dir():
        pytest.fail(f"no llama.cpp source at {src}: `make install` fetches it")
    return src / "ggml"


def _amx_symbols(ggml: Path, flags: tuple[str, ...], tmp_path: Path) -> int:
    obj = tmp_path / "mmq.o"
    subprocess.run(["g++", "-std=c++17", "-O0", "-c", "-march=sapphirerapids", *flags,
                    f"-I{ggml / 'include'}", f"-I{ggml / 'src'}", f"-I{ggml / 'src' / 'ggml-cpu'}",
                    str(ggml / "src" / "ggml-cpu" / "amx" / "mmq.cpp"), "-o", str(obj)], check=True)
    names = subprocess.run(["nm", "-C", str(obj)], capture_output=True, text=True, check=True).stdout
    return names.count(AMX_SYMBOL)


@pytest.mark.skipif(not X86 or shutil.which("g++") is None, reason="x86-64 with g++ only")
def test_flags_compile_amx_kernels_out_for_an_amx_cpu(tmp_path, monkeypatch):
    monkeypatch.delenv("RYS_LLAMA_AMX", raising=False)
    ggml = _ggml_source()
    assert llama_build.compile_flags() == ("-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16")
    assert _amx_symbols(ggml, (), tmp_path) > 0  # control: an AMX CPU gets the kernels by default
    assert _amx_symbols(ggml, llama_build.compile_flags(), tmp_path) == 0


def test_amx_switch_and_cache_key(monkeypatch, tmp_path):
    monkeypatch.setenv("RYS_CACHE", str(tmp_path))
    monkeypatch.delenv("RYS_LLAMA_AMX", raising=False)
    off = llama_build.build_key()
    monkeypatch.setenv("RYS_LLAMA_AMX", "on")
    assert llama_build.compile_flags() == ()
    assert llama_build.build_key() != off  # AMX on is another build, never the cached one
    monkeypatch.delenv("RYS_LLAMA_AMX")
    assert llama_build.build_key() == off  # stable for one machine and flag set
    assert llama_build.build_dir().is_relative_to(tmp_path)


def test_cache_key_follows_the_cpu(monkeypatch):
    """Two CPUs that differ in one feature flag never share a build (SIGILL)."""
    monkeypatch.delenv("RYS_LLAMA_AMX", raising=False)
    sig = "x86_64 Intel Xeon avx2 avx512f fma"
    monkeypatch.setattr(llama_build, "cpu_signature", lambda: sig)
    a = llama_build.build_key()
    monkeypatch.setattr(llama_build, "cpu_signature", lambda: sig + " amx_int8 amx_tile")
    assert llama_build.build_key() != a


def test_cpu_signature_reads_this_machine():
    sig = llama_build.cpu_signature()
    assert sig.startswith(platform.machine())
    if X86 and Path("/proc/cpuinfo").exists():
        assert " sse2 " in f" {sig} "  # every x86-64 CPU has it: the flags were read


def test_the_installed_builds_used_these_flags():
    """make install built llama-server and the wheel for this machine, with compile_flags()."""
    record = json.loads((llama_build.build_dir() / "build.json").read_text())
    assert record["cflags"] == " ".join(llama_build.compile_flags())
    assert record["key"] == llama_build.build_key()
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    assert "CPU" in info  # the string lists the compiled-in CPU features
    if llama_build.compile_flags():
        assert "AMX" not in info, info


@pytest.mark.skipif(not X86 or shutil.which("nm") is None, reason="x86-64 with nm only")
def test_installed_binaries_hold_no_amx_kernels():
    """On an AMX machine a build regression shows here (elsewhere -march=native has no AMX anyway)."""
    import llama_cpp

    lib = Path(llama_cpp.__file__).parent / "lib"
    files = [llama_build.tool_path("llama-server"), *lib.glob("libggml-cpu*")]
    assert len(files) >= 2, files
    for f in files:
        # The wheel's libraries are stripped: their dynamic table still lists ggml's functions.
        out = subprocess.run(["nm", "-C", *(["-D"] if ".so" in f.name else []), str(f)],
                             capture_output=True, text=True).stdout
        assert "ggml_compute_forward" in out, f  # control: nm sees ggml's own functions here
        assert AMX_SYMBOL not in out, f
