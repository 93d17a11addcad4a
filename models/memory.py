"""How much memory a model needs once a server has loaded it, estimated before loading it.

The estimate is the weights, the KV cache for the context the server is started with, and
the server's own buffers. It errs on the high side: a user told "fits" must not meet an
out-of-memory error, which is the complaint users of local LLM launchers raise most about
memory ("OOM with no hint of model size vs VRAM").
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
GIB = 1 << 30
# The KV cache is kept in 16-bit floats by llama.cpp and by TGI unless told otherwise.
KV_BYTES_PER_VALUE = 2


@dataclass(frozen=True)
class ModelShape:
    """What a model's memory use depends on, read from its own files."""

    weight_bytes: int
    layers: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    context_length: int | None = None  # the context it was trained for


@dataclass(frozen=True)
class ServerOverhead:
    """A server's buffers beyond weights and KV cache: compute buffers, activations for a
    prefill batch, allocator slack."""

    fixed: int
    share_of_weights: float


# llama.cpp: compute buffers, and the server process itself (llama-cpp-python's server is
# about 80 MB of Python). Measured for SmolLM2 after a 32-token answer: RSS 232, 317 and
# 413 MB at contexts 512, 4096 and 8192, against estimates of 314, 397 and 491 MB.
# TGI: activations for its default prefill batch (4096 tokens) and CUDA graphs.
OVERHEAD: dict[str, ServerOverhead] = {
    "llama.cpp": ServerOverhead(fixed=192 * MIB, share_of_weights=0.05),
    "TGI": ServerOverhead(fixed=1 * GIB, share_of_weights=0.10),
}
# What the CUDA runtime itself takes on each GPU it uses, before any model byte.
CUDA_CONTEXT_BYTES = 512 * MIB


@dataclass(frozen=True)
class MemoryNeed:
    weights: int
    kv_cache: int
    overhead: int
    context: int
    model_context: int | None = None  # the context the model was trained for

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.overhead


def kv_cache_bytes(shape: ModelShape, context: int) -> int:
    """Keys and values for every layer and every position of the context."""
    if not (shape.layers and shape.kv_heads and shape.head_dim):
        # Unknown shape: assume a quarter of the weights, about right for 7B-class models
        # at a 4k context, rather than pretending the cache is free.
        return shape.weight_bytes // 4
    return 2 * shape.layers * context * shape.kv_heads * shape.head_dim * KV_BYTES_PER_VALUE


def estimate(shape: ModelShape, context: int, server: str) -> MemoryNeed:
    """Memory a ``server`` ("llama.cpp" or "TGI") needs for the model at ``context`` tokens."""
    overhead = OVERHEAD[server]
    return MemoryNeed(
        weights=shape.weight_bytes,
        kv_cache=kv_cache_bytes(shape, context),
        overhead=overhead.fixed + int(shape.weight_bytes * overhead.share_of_weights),
        context=context,
        model_context=shape.context_length,
    )
