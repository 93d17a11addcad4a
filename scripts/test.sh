#!/usr/bin/env bash
# Install what the tests need, then run lint, type checks and the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k client -x).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install.sh --test

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
