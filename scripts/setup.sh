#!/usr/bin/env bash
# The slow stages of `make install`, each shown as one line with its elapsed
# time; the full output goes to a log in the cache and only its tail is shown,
# with the log's path, when a stage fails.
#
# Usage: scripts/setup.sh wheel|tools|smollm2 [PYTHON]
#   wheel    the llama-cpp-python wheel, compiled for this machine
#   tools    llama-server, llama-quantize and llama-perplexity from the same llama.cpp
#   smollm2  SmolLM2-135M-Instruct (Q4_1) for the end-to-end tests (needs the venv's PYTHON)
#
# Versions, compiler flags (AMX off on x86-64 unless RYS_LLAMA_AMX=on) and the
# per-machine cache folder all come from rys/llamacpp/build.py.
set -euo pipefail
stage_name="$1"
py="${2:-python3}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
info() { python3 "$repo/rys/llamacpp/build.py" "$1"; }
version="$(info version)"
dir="$(info build-dir)"
cflags="$(info cflags)"
cache="$(dirname "$(dirname "$dir")")"
logs="$dir/logs"
mkdir -p "$logs"

# stage LABEL LOG COMMAND...: one line, the log's tail only on failure.
# (Inside `if`, bash ignores set -e: the stage functions return on failure themselves.)
stage() {
    local label="$1"
    log="$2"
    shift 2
    local start=$SECONDS
    printf '%s ... ' "$label"
    if "$@" >"$log" 2>&1; then
        local took=$((SECONDS - start))
        printf 'done in %dm %02ds\n' $((took / 60)) $((took % 60))
    else
        local took=$((SECONDS - start))
        printf 'FAILED after %dm %02ds\n' $((took / 60)) $((took % 60))
        echo "--- last 25 lines of $log:"
        tail -n 25 "$log"
        echo "--- full log: $log"
        exit 1
    fi
}

src="$cache/src/llama_cpp_python-$version"
sdist="$cache/src/llama_cpp_python-$version.tar.gz"
fetch_source() {
    mkdir -p "$cache/src"
    [ -f "$sdist" ] || python3 -m pip download --no-deps --no-binary :all: \
        "llama-cpp-python==$version" -d "$cache/src" || return 1
    [ -d "$src/vendor/llama.cpp" ] || tar -xzf "$sdist" -C "$cache/src"
}
source_ready() { [ -f "$sdist" ] && [ -d "$src/vendor/llama.cpp" ]; }

# check_flags FILE: every flag of ours appears in FILE (the wheel's verbose build
# log, llama.cpp's CMakeCache.txt): a build that silently dropped them (pip's
# cache, a changed build backend) fails here, not later on an AMX CPU.
check_flags() {
    local flag
    for flag in $cflags; do
        grep -q -- "$flag" "$1" || { echo "error: $flag is missing from $1" >&2; return 1; }
    done
}

build_wheel() {
    local out="$dir/wheel" tmp="$dir/wheel.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # --no-cache-dir: pip's own wheel cache would hand back an earlier build
    # made with other flags (an AMX build, say) without compiling anything.
    # build.verbose: the log shows every compile command, so the flags can be checked below.
    CMAKE_ARGS="-DCMAKE_C_FLAGS='$cflags' -DCMAKE_CXX_FLAGS='$cflags'" \
        python3 -m pip wheel -v --no-cache-dir --no-deps --config-settings=build.verbose=true \
        "$sdist" -w "$tmp" || return 1
    check_flags "$log" || return 1
    rm -rf "$out"
    mv "$tmp" "$out"
}

build_tools() {
    local build="$cache/build/$(basename "$dir")"
    local extra=()
    if [ "$(uname -s)" = "Darwin" ]; then extra+=(-DGGML_METAL=ON); fi
    cmake -S "$src/vendor/llama.cpp" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
        "-DCMAKE_C_FLAGS=$cflags" "-DCMAKE_CXX_FLAGS=$cflags" ${extra[@]+"${extra[@]}"} || return 1
    local jobs
    jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
    # shellcheck disable=SC2046
    check_flags "$build/CMakeCache.txt" || return 1
    cmake --build "$build" -j "$jobs" --target $(info tools) || return 1
    mkdir -p "$dir/bin"
    for tool in $(info tools); do
        cp "$build/bin/$tool" "$dir/bin/$tool.tmp" && mv "$dir/bin/$tool.tmp" "$dir/bin/$tool" || return 1
    done
    printf '{"llama_cpp_python": "%s", "cflags": "%s", "key": "%s"}\n' \
        "$version" "$cflags" "$(basename "$dir")" >"$dir/build.json"
}

tools_ready() {
    [ -f "$dir/build.json" ] || return 1
    for tool in $(info tools); do
        [ -x "$dir/bin/$tool" ] || return 1
    done
    "$dir/bin/llama-server" --version >/dev/null 2>&1  # runs on this CPU (llama-quantize has no --version)
}

case "$stage_name" in
    wheel)
        if ls "$dir"/wheel/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
            echo "llama-cpp-python $version wheel: cached for this machine ($dir/wheel)"
            exit 0
        fi
        source_ready || stage "fetching llama-cpp-python $version source" "$logs/fetch.log" fetch_source
        stage "building llama-cpp-python $version wheel for this machine (once, ~4 min on 2 cores)" "$logs/wheel.log" build_wheel
        ;;
    tools)
        # the source is needed even when the tools are cached: `rys convert` runs its convert_hf_to_gguf.py
        source_ready || stage "fetching llama-cpp-python $version source" "$logs/fetch.log" fetch_source
        if tools_ready; then
            echo "llama-server $version: cached for this machine ($dir/bin)"
            exit 0
        fi
        stage "building llama-server, llama-quantize, llama-perplexity (once, ~4 min on 2 cores)" "$logs/tools.log" build_tools
        ;;
    smollm2)
        if [ -f "$cache/models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
            echo "SmolLM2-135M-Instruct: cached ($cache/models)"
            exit 0
        fi
        stage "fetching SmolLM2-135M-Instruct" "$logs/smollm2.log" "$py" -m rys.llamacpp.assets smollm2
        ;;
    *)
        echo "usage: scripts/setup.sh wheel|tools|smollm2 [PYTHON]" >&2
        exit 2
        ;;
esac
