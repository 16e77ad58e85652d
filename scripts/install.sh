#!/usr/bin/env bash
# Install what BooControl needs on a Debian machine: system packages (only those missing), a venv in
# .venv with the project, and with --test everything the test suite needs (chromium, bubblewrap, the
# real llama-swap via `go install`, llama.cpp's llama-server built from the llama-cpp-python sdist).
# Idempotent; expensive builds are cached under ~/.cache/boocontrol.
set -euo pipefail
cd "$(dirname "$0")/.."
TEST=0
[ "${1:-}" = "--test" ] && TEST=1
CACHE="${BOOCONTROL_CACHE_DIR:-$HOME/.cache/boocontrol}"
mkdir -p "$CACHE"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "need root for: $*" >&2; return 1; fi; }

pkgs=(postgresql python3-venv python3-dev ca-certificates curl git)
[ $TEST = 1 ] && pkgs+=(chromium bubblewrap cmake g++ make)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  as_root mkdir -p /etc/postgresql-common
  # do not let the package start a system cluster on 5432: BooControl runs its own in its data dir
  [ -f /etc/postgresql-common/createcluster.conf ] || echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing[@]} >/dev/null
fi

PY=python3
$PY -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
if [ ! -x .venv/bin/python ]; then $PY -m venv .venv; fi
.venv/bin/pip install -q --upgrade pip
if [ $TEST = 1 ]; then .venv/bin/pip install -q -e '.[test]'; else .venv/bin/pip install -q -e .; fi
echo "== python environment ready (.venv)"

[ $TEST = 1 ] || exit 0

# --- the real llama-swap, installed from the Go module proxy at pinned revisions -------------------
# name (= cache dir) and Go version of each pinned revision (see tests/support/llamaswap.py)
declare -A LS_PINS=(
  [0bdb3720199f530b622a1934c0db89f32c94819c]=v0.0.0-20260822162957-0bdb3720199f
  [v250]=v0.0.0-20260814154540-60226b63776e
)
command -v go >/dev/null || echo "## no Go toolchain on PATH (llama-swap needs Go >= 1.26.1; GOTOOLCHAIN=auto fetches it)"
for dir in "${!LS_PINS[@]}"; do
  ver="${LS_PINS[$dir]}"
  out="$CACHE/llama-swap/$dir"
  if [ -x "$out/llama-swap" ] && [ -x "$out/simple-responder" ]; then
    echo "== llama-swap $dir: cached ($(cat "$out/PROVENANCE" 2>/dev/null || echo 'go install'))"; continue
  fi
  mkdir -p "$out"
  : > "$out/go-install.err"
  ok=1
  for pkg in "" /cmd/simple-responder /cmd/fake-model; do
    GOBIN="$out" GOFLAGS=-buildvcs=false go install "github.com/mostlygeek/llama-swap$pkg@$ver" 2>>"$out/go-install.err" || ok=0
  done
  if [ $ok = 1 ]; then
    echo "installed by go install github.com/mostlygeek/llama-swap@$ver" > "$out/PROVENANCE"
    echo "== llama-swap $dir: installed"
  else
    echo "################################################################################"
    echo "## REAL LLAMA-SWAP NOT INSTALLED ($dir): the Go module proxy refused it:"
    sed 's/^/##   /' "$out/go-install.err" | head -3
    echo "## Tests that need it will be SKIPPED with this reason; the connector contract"
    echo "## still runs against the demo fleet."
    echo "################################################################################"
  fi
done

# --- llama.cpp's llama-server, built from the llama-cpp-python source package (cached) -----------
PYTHON=.venv/bin/python bash scripts/build-llama-server.sh >/dev/null
echo "== llama-server: $(bash scripts/build-llama-server.sh)"
