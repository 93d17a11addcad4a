#!/usr/bin/env bash
# Install what the tests need, then run lint, type checks and the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k client -x).
#
# The tests need: the project with its test extras (.venv); Debian's Docker engine (started
# here when none answers, stopped again at the end), its registry, mmdebstrap (the test
# images are built from Debian packages: no image registry is reachable) and docker-compose
# (to validate exported compose files); Chromium and a font for the browser tests
# (Playwright drives the system Chromium: its own browser download does not work here) and
# npm for axe-core, their accessibility checker;
# desktop-file-utils and xdg-user-dirs for the desktop shortcut tests; etcd, kubectl and a
# kube-apiserver (built once from Debian's source, ~15-20 min, cached in ~/.cache/opea-chat)
# to check `export kubernetes` against a real Kubernetes API server.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/apt-install.sh docker.io docker-registry mmdebstrap docker-compose \
    chromium fonts-dejavu-core desktop-file-utils xdg-user-dirs etcd-server
# Any kubectl will do (Debian's is 1.20); another package's may already be installed.
command -v kubectl >/dev/null || scripts/apt-install.sh kubernetes-client
scripts/kube-apiserver.sh >/dev/null
scripts/install.sh --test

# axe-core, the accessibility checker the browser tests inject into the page (npm registry;
# kept outside the repository, fetched once).
AXE_DIR="$HOME/.cache/opea-chat/axe-core"
if [ ! -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ]; then
    # Any npm will do: where Node.js came from elsewhere (NodeSource), Debian's npm package
    # conflicts with it and apt refuses.
    command -v npm >/dev/null || scripts/apt-install.sh npm
    mkdir -p "$AXE_DIR"
    (cd "$AXE_DIR" && npm install --no-audit --no-fund --silent axe-core@4)
fi

scripts/docker-engine.sh start
trap 'scripts/docker-engine.sh stop' EXIT

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== lint-imports (layering rules: [tool.importlinter] in pyproject.toml)"
.venv/bin/lint-imports
echo "== pytest"
.venv/bin/pytest "$@"
