"""Recognising GGUF files before a server is asked to load them.

A GGUF file starts with the magic ``GGUF``, a little-endian uint32 version, then the tensor
and metadata counts (uint64 each). Checking this costs one read and turns "the server
crashed while loading" into "this is not a GGUF file" before anything starts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from launcher.errors import ModelError

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
_HEADER = struct.Struct("<4sIQQ")


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    tensor_count: int
    metadata_count: int


def read_header(path: Path) -> GGUFHeader:
    try:
        with path.open("rb") as handle:
            raw = handle.read(_HEADER.size)
    except IsADirectoryError as exc:
        raise ModelError(f"{path} is a folder, not a GGUF file",
                         hint="the local runtime serves one .gguf file") from exc
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror}") from exc
    if len(raw) < _HEADER.size or raw[:4] != MAGIC:
        raise ModelError(
            f"{path} is not a GGUF model (it does not start with 'GGUF')",
            hint="the local runtime serves GGUF files; convert the model or pick another",
        )
    _, version, tensors, metadata = _HEADER.unpack(raw)
    if version not in SUPPORTED_VERSIONS:
        raise ModelError(
            f"{path} is GGUF version {version}; this llama.cpp reads versions 2 and 3",
            hint="re-export the model with a current llama.cpp",
        )
    return GGUFHeader(version=version, tensor_count=tensors, metadata_count=metadata)
