#!/usr/bin/env bash
# Install everything the tests need, then run the whole gate: ruff, mypy, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
unset PREFECT_API_URL
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy .
echo "== pytest"; .venv/bin/pytest -q -rs -p no:cacheprovider "$@"
