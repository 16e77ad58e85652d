#!/usr/bin/env bash
# Install what BooControl needs on a Debian machine: system packages (only those missing), a venv in
# .venv with the project, and with --test everything the test suite needs (chromium, bubblewrap,
# llama.cpp's llama-server built from the llama-cpp-python sdist). A real llama-swap is optional (see below).
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
[ $TEST = 1 ] && pkgs+=(chromium bubblewrap cmake g++ make openssh-server)  # sshd: config edit tests
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
# pip runs once per pyproject.toml (and once more for the test extras), not on every start: the stamp
# records what was installed; a changed pyproject.toml or a missing entry point installs again.
stamp=.venv/.boocontrol-installed
want="$(sha256sum pyproject.toml | cut -c1-64) $([ $TEST = 1 ] && echo test || echo run)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ -x .venv/bin/boocontrol ] && { [ "$have" = "$want" ] || [ "$have" = "${want% run} test" ]; }; then
  echo "== python environment up to date (.venv; pyproject.toml unchanged since it was installed)"
else
  .venv/bin/pip install -q --upgrade pip
  if [ $TEST = 1 ]; then .venv/bin/pip install -q -e '.[test]'; else .venv/bin/pip install -q -e .; fi
  echo "$want" > "$stamp"
  echo "== python environment ready (.venv)"
fi
echo "   the command is .venv/bin/boocontrol (\`source .venv/bin/activate\` puts it on PATH)"

[ $TEST = 1 ] || exit 0

# --- the real llama-swap: not installable from a registry ----------------------------------------
# The Go module proxy answers 403 for llama-swap, so nothing is installed here. The resilience scenarios
# always run against the simulator (demo.single); they also run against a real binary when one is provided.
ls_found="${BOOCONTROL_LLAMA_SWAP_BIN:-}"
[ -n "$ls_found" ] || ls_found="$(ls "$CACHE"/llama-swap/*/llama-swap 2>/dev/null | head -1 || true)"
if [ -n "$ls_found" ] && [ -x "$ls_found" ]; then
  echo "== real llama-swap: $ls_found (the resilience scenarios run against it and against the simulator)"
else
  echo "== llama-swap cannot come from the registry: the resilience scenarios run against the simulator."
  echo "   To also run them against a real one, set BOOCONTROL_LLAMA_SWAP_BIN to a llama-swap binary"
  echo "   (simple-responder beside it, or BOOCONTROL_SIMPLE_RESPONDER_BIN) or place binaries in"
  echo "   $CACHE/llama-swap/<rev>/."
fi

# --- llama.cpp's llama-server, built from the llama-cpp-python source package (cached) -----------
PYTHON=.venv/bin/python bash scripts/build-llama-server.sh >/dev/null
echo "== llama-server: $(bash scripts/build-llama-server.sh)"
