#!/usr/bin/env bash
# Install what the tests need, then run lint, type checks and the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k client -x).
#
# The tests need: the project with its test extras (.venv), Debian's Docker engine (started
# here when none answers, stopped again at the end), a local image registry, mmdebstrap
# (the test images are built from Debian packages: no registry is reachable) and
# docker-compose (to validate exported compose files).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install.sh --test
scripts/apt-install.sh docker.io docker-registry mmdebstrap docker-compose desktop-file-utils \
    xdg-user-dirs

scripts/docker-engine.sh start
trap 'scripts/docker-engine.sh stop' EXIT

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
