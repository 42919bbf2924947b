#!/usr/bin/env bash
# Build llama.cpp's llama-server from the llama.cpp that the pinned
# llama-cpp-python ships in its source distribution, once per machine.
# Usage: build-llama-server.sh VERSION CACHE_DIR
# Result: CACHE_DIR/llama.cpp-VERSION/bin/llama-server (CPU on Linux, Metal on macOS).
set -euo pipefail
version="$1"
cache="$2"
dest="$cache/llama.cpp-$version"
bin="$dest/bin/llama-server"
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    echo "llama-server $version: already built at $bin"
    exit 0
fi
mkdir -p "$cache/src"
sdist="$cache/src/llama_cpp_python-$version.tar.gz"
if [ ! -f "$sdist" ]; then
    python3 -m pip download --quiet --no-deps --no-binary :all: \
        "llama-cpp-python==$version" -d "$cache/src"
fi
src="$cache/src/llama_cpp_python-$version"
[ -d "$src/vendor/llama.cpp" ] || tar -xzf "$sdist" -C "$cache/src"
build="$cache/build/llama.cpp-$version"
mkdir -p "$cache/build"
jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
extra=()
if [ "$(uname -s)" = "Darwin" ]; then extra+=(-DGGML_METAL=ON); fi
cmake -S "$src/vendor/llama.cpp" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF "${extra[@]}" >"$cache/build/cmake-$version.log"
cmake --build "$build" --target llama-server -j "$jobs" >>"$cache/build/cmake-$version.log"
mkdir -p "$dest/bin"
cp "$build/bin/llama-server" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "llama-server $version: built at $bin"
