"""Which llama.cpp rys builds, with what flags, and where the builds live.

The one place for the llama-cpp-python pin, the compiler flags and the cache
layout. `make install` runs this file as a script (before any virtualenv
exists, so it imports nothing but the standard library); rys imports it to
find the binaries the Makefile built.

AMX: ggml's AMX kernels crash with a SIGSEGV in `ggml_backend_amx_mul_mat` on
Intel Xeons that have AMX, with quantized models (llama.cpp issue #20824,
open). rys builds llama.cpp without them on x86-64; the AVX-512/AVX2 kernels
and weight repacking stay. `RYS_LLAMA_AMX=on` (or `make install AMX=on`)
builds with them once upstream fixes the bug.

Builds are keyed by the machine they were compiled for: ggml compiles with
`-march=native`, so a binary built on one CPU can die with SIGILL on another.
The key hashes the CPU's feature flags and the compiler flags, so a home
folder shared between two machines never hands one a binary built for the
other, and turning AMX on or off builds afresh.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path

LLAMA_CPP_PYTHON = "0.3.36"  # the llama-cpp-python release whose vendored llama.cpp rys builds

# Flags that turn ggml's AMX kernels off (GCC and Clang honour -mno-* whatever
# the order relative to -march=native, which ggml adds after them).
NO_AMX_FLAGS = ("-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16")

# The llama.cpp tools rys runs: the server, plus the quantizer and the
# perplexity/KL tool of the torch path.
TOOLS = ("llama-server", "llama-quantize", "llama-perplexity")


def cache_dir() -> Path:
    """$RYS_CACHE, else ~/.cache/rys."""
    return Path(os.environ.get("RYS_CACHE") or Path.home() / ".cache" / "rys")


def amx_enabled() -> bool:
    """$RYS_LLAMA_AMX=on|1|yes builds ggml's AMX kernels back in."""
    return os.environ.get("RYS_LLAMA_AMX", "").strip().lower() in ("1", "on", "yes", "true")


def compile_flags() -> tuple[str, ...]:
    """Extra C and C++ flags for every llama.cpp build rys makes."""
    if platform.machine().lower() in ("x86_64", "amd64", "i686", "i386") and not amx_enabled():
        return NO_AMX_FLAGS
    return ()


def cmake_args() -> list[str]:
    """CMake cache entries carrying compile_flags() into C and C++."""
    flags = " ".join(compile_flags())
    return [f"-DCMAKE_C_FLAGS={flags}", f"-DCMAKE_CXX_FLAGS={flags}"] if flags else []


def cpu_signature() -> str:
    """What -march=native compiles for: the CPU's model and feature flags."""
    machine = platform.machine()
    if sys.platform == "darwin":
        out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
        return f"{machine} {out.stdout.strip()}"
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return machine
    # The first processor's block; x86 names its features "flags", ARM "Features".
    first = text.split("\n\n", 1)[0]
    fields = {}
    for line in first.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    features = fields.get("flags") or fields.get("features") or ""
    model = fields.get("model name") or fields.get("cpu part") or ""
    return f"{machine} {model} {' '.join(sorted(features.split()))}"


def build_key() -> str:
    """`x86_64-<12 hex>`: the machine and a hash of CPU features and compile flags."""
    digest = hashlib.sha256(f"{cpu_signature()}\n{' '.join(compile_flags())}".encode()).hexdigest()
    return f"{platform.machine()}-{digest[:12]}"


def build_dir() -> Path:
    """Where this machine's llama.cpp tools and wheel live."""
    return cache_dir() / f"llama.cpp-{LLAMA_CPP_PYTHON}" / build_key()


def tool_path(name: str) -> Path:
    """A llama.cpp tool built by `make install` for this machine."""
    return build_dir() / "bin" / name


def wheel_dir() -> Path:
    """The folder holding this machine's llama-cpp-python wheel."""
    return build_dir() / "wheel"


def source_dir() -> Path:
    """The pinned llama.cpp source tree that `make install` unpacks (the one
    llama-cpp-python vendors; the same for every machine, so not per build key)."""
    return cache_dir() / "src" / f"llama_cpp_python-{LLAMA_CPP_PYTHON}" / "vendor" / "llama.cpp"


def converter() -> Path:
    """llama.cpp's own HF -> GGUF converter in the pinned source (it imports the
    `conversion/` package beside it and its own `gguf-py/`)."""
    return source_dir() / "convert_hf_to_gguf.py"


def _main(argv: list[str]) -> int:
    answers = {
        "version": lambda: LLAMA_CPP_PYTHON,
        "key": build_key,
        "build-dir": lambda: str(build_dir()),
        "wheel-dir": lambda: str(wheel_dir()),
        "cflags": lambda: " ".join(compile_flags()),
        "tools": lambda: " ".join(TOOLS),
    }
    if len(argv) != 1 or argv[0] not in answers:
        sys.stderr.write(f"usage: python3 rys/llamacpp/build.py {'|'.join(answers)}\n")
        return 2
    sys.stdout.write(f"{answers[argv[0]]()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
