#!/usr/bin/env bash
# Build llama.cpp's own `llama-server` from the llama.cpp sources bundled in the llama-cpp-python
# source package on PyPI (no model, no prebuilt binary is downloaded). The result is cached outside
# the repo, keyed by version, so later runs take no time. Prints the binary's path on stdout.
set -euo pipefail
VER="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE="${BOOCONTROL_CACHE_DIR:-$HOME/.cache/boocontrol}"
OUT="$CACHE/llama-server/$VER"
BIN="$OUT/llama-server"
if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
  echo "$BIN"; exit 0
fi
PY="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VER" -d "$work" >&2
tar -xzf "$work"/llama_cpp_python-"$VER".tar.gz -C "$work"
src="$work/llama_cpp_python-$VER/vendor/llama.cpp"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF >&2
cmake --build "$work/build" --target llama-server -j "$(nproc)" >&2
mkdir -p "$OUT"
cp "$work/build/bin/llama-server" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
echo "$BIN"
