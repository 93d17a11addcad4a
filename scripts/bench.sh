#!/usr/bin/env bash
# Run the benchmark (bench/): installs what it needs like scripts/test.sh, makes sure a
# Docker engine runs and the test images exist (docker runtime and docker-compose are
# measured against them), then `python -m bench`. Arguments go to it, e.g.
#   scripts/bench.sh --write-docs      scripts/bench.sh --no-docker --runs 5
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/apt-install.sh docker.io docker-registry mmdebstrap docker-compose
scripts/install.sh --test
scripts/docker-engine.sh start
trap 'scripts/docker-engine.sh stop' EXIT
.venv/bin/python -c 'import docker; from tests.docker_images import build_all; build_all(docker.from_env())'
.venv/bin/python -m bench "$@"
