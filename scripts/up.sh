#!/usr/bin/env bash
# Install (if needed) and start the whole cockpit on embedded defaults. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/boocontrol up "$@"
