#!/usr/bin/env bash
# Build llama-cpp-python portably into the project's own wheelhouse.
#
# Why: PyPI ships llama-cpp-python as source only, and a default (native) build
# segfaults on quantized GGUF models on some CPUs. pip's wheel cache does not key on
# CMAKE_ARGS, so we build with --no-cache-dir into a wheelhouse of our own and remember the
# flags next to the wheel; a wheel built with other flags is rebuilt. The wheelhouse lives
# outside the checkout (OPEA_CHAT_WHEELHOUSE, default ~/.cache/opea-chat/wheelhouse) so a
# fresh clone on the same machine reuses the minutes-long build.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
VERSION=${LLAMA_CPP_VERSION:-0.3.36}
# scripts/gpu-check.sh builds its CUDA wheel into a wheelhouse of its own.
WHEELHOUSE=${OPEA_CHAT_WHEELHOUSE:-${XDG_CACHE_HOME:-$HOME/.cache}/opea-chat/wheelhouse}
# A local sdist (a machine without network): LLAMA_CPP_SOURCE=/path/llama_cpp_python-X.tar.gz
SOURCE=${LLAMA_CPP_SOURCE:-llama-cpp-python==$VERSION}

if [ -z "${CMAKE_ARGS:-}" ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && command -v nvcc >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        CMAKE_ARGS="-DGGML_CUDA=on"
    else
        CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
    fi
fi
stamp="$WHEELHOUSE/llama_cpp_python-$VERSION.cmake-args"

mkdir -p "$WHEELHOUSE"
if compgen -G "$WHEELHOUSE/llama_cpp_python-$VERSION-*.whl" >/dev/null \
    && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$CMAKE_ARGS" ]; then
    echo "llama-cpp-python $VERSION: using the wheel in $WHEELHOUSE"
    exit 0
fi

rm -f "$WHEELHOUSE"/llama_cpp_python-*.whl "$stamp"
echo "llama-cpp-python $VERSION: building (a few minutes) with CMAKE_ARGS=$CMAKE_ARGS"
CMAKE_ARGS="$CMAKE_ARGS" "$PY" -m pip wheel --no-cache-dir --no-deps \
    -w "$WHEELHOUSE" "$SOURCE"
printf '%s' "$CMAKE_ARGS" > "$stamp"
