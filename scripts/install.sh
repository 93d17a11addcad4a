#!/usr/bin/env bash
# Install opea-chat into this checkout's own virtual environment (.venv).
#
#   scripts/install.sh          the app
#   scripts/install.sh --test   the app and what its tests need
#
# llama-cpp-python is built once into a wheelhouse outside the checkout (see
# scripts/build-llama.sh); later runs, in this or any other clone, reuse it, so re-running
# this script is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
if [ "${1:-}" = "--test" ]; then
    extras="[test]"
fi

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Error: opea-chat needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    echo "Creating the virtual environment in .venv"
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip wheel

scripts/build-llama.sh
WHEELHOUSE=${OPEA_CHAT_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/opea-chat/wheelhouse}

echo "Installing opea-chat$extras and its dependencies"
.venv/bin/python -m pip install -qq --disable-pip-version-check \
    --find-links "$WHEELHOUSE" --only-binary llama-cpp-python \
    --editable ".$extras"

if [ -z "$extras" ]; then
    # A command on the user's PATH, pointing into this checkout's environment.
    mkdir -p "$HOME/.local/bin"
    ln -sf "$PWD/.venv/bin/opea-chat" "$HOME/.local/bin/opea-chat"
    echo "Installed: $PWD/.venv/bin/opea-chat (linked from ~/.local/bin/opea-chat)"
fi
