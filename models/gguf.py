"""Reading GGUF headers: what a model file is, and whether it is whole.

A GGUF file is the magic ``GGUF``, a uint32 version, the tensor and metadata counts, the
metadata (typed key/value pairs), one record per tensor (name, shape, type, offset), then the
tensor data at an aligned offset. Reading all of it but the data tells the architecture,
parameter count, quantization and context length, and whether the file is long enough for
every tensor it declares: a truncated download is refused here, in milliseconds, instead of
crashing the LLM server while it loads.

The type tables (value types, block sizes of every quantization, file type names) come from
ggml-org's ``gguf`` package, which llama.cpp keeps current. Its ``GGUFReader`` is not used:
it builds an array per vocabulary entry and takes seconds on a small model's tokenizer,
too slow for ``opea-chat doctor``; this scan skips those arrays in place.
"""

from __future__ import annotations

import mmap
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.errors import ModelError
from models.memory import ModelShape

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

_U8, _U32, _U64 = struct.Struct("<B"), struct.Struct("<I"), struct.Struct("<Q")
# GGUF value types (gguf.GGUFValueType): the struct each scalar is stored as.
_SCALARS: dict[int, struct.Struct] = {
    0: struct.Struct("<B"), 1: struct.Struct("<b"), 2: struct.Struct("<H"),
    3: struct.Struct("<h"), 4: _U32, 5: struct.Struct("<i"), 6: struct.Struct("<f"),
    7: struct.Struct("<?"), 10: _U64, 11: struct.Struct("<q"), 12: struct.Struct("<d"),
}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True)
class ArrayValue:
    """A metadata array, kept as its length only (vocabularies hold 100k+ entries)."""

    item_type: int
    count: int


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    tensor_count: int
    metadata_count: int
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    file_size: int = 0
    # Bytes of tensor data the header declares; the file holds at least this much.
    tensor_bytes: int = 0
    parameter_count: int = 0
    # The file's quantization ("Q4_1", "Q4_K_M", "F16"): general.file_type if present, else
    # the tensor type holding most of the bytes.
    quantization: str = "unknown"

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    def arch_value(self, key: str) -> int | None:
        value = self.metadata.get(f"{self.architecture}.{key}")
        return int(value) if isinstance(value, int | float) else None

    @property
    def context_length(self) -> int | None:
        """The context the model was trained for."""
        return self.arch_value("context_length")

    def shape(self) -> ModelShape:
        heads = self.arch_value("attention.head_count")
        embedding = self.arch_value("embedding_length")
        head_dim = self.arch_value("attention.key_length") or (
            embedding // heads if embedding and heads else None)
        return ModelShape(
            weight_bytes=self.tensor_bytes,
            layers=self.arch_value("block_count"),
            kv_heads=self.arch_value("attention.head_count_kv") or heads,
            head_dim=head_dim,
            context_length=self.context_length,
        )


class _Truncated(Exception):
    """The header ran past the end of the file."""


class _Corrupt(Exception):
    """A value in the header cannot be right."""


class _Cursor:
    def __init__(self, data: mmap.mmap | bytes):
        self.data = data
        self.pos = 0
        self.size = len(data)

    def need(self, count: int) -> None:
        if count < 0 or self.pos + count > self.size:
            raise _Truncated

    def unpack(self, layout: struct.Struct) -> Any:
        self.need(layout.size)
        value = layout.unpack_from(self.data, self.pos)[0]
        self.pos += layout.size
        return value

    def string(self) -> str:
        length = self.unpack(_U64)
        self.need(length)
        raw = self.data[self.pos:self.pos + length]
        self.pos += length
        return bytes(raw).decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        for _ in range(count):
            self.need(8)
            length = _U64.unpack_from(self.data, self.pos)[0]
            self.pos += 8
            self.need(length)
            self.pos += length

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_type, count = self.unpack(_U32), self.unpack(_U64)
            if item_type in _SCALARS:
                self.need(count * _SCALARS[item_type].size)
                self.pos += count * _SCALARS[item_type].size
            elif item_type == _STRING:
                self.skip_strings(count)
            else:  # arrays of arrays do not occur in GGUF models; refuse rather than guess
                raise _Corrupt(f"unsupported array item type {item_type} at byte {self.pos}")
            return ArrayValue(item_type, count)
        raise _Corrupt(f"unknown metadata value type {kind} at byte {self.pos}")


def _open_failure(path: Path, exc: OSError) -> ModelError:
    if isinstance(exc, IsADirectoryError):
        return ModelError(f"{path} is a folder, not a GGUF file",
                          hint="the local runtime serves one .gguf file")
    return ModelError(f"cannot read {path}: {exc.strerror or exc}")


def read_header(path: Path) -> GGUFHeader:
    """Read and check a GGUF file's header; raise ``ModelError`` saying what is wrong."""
    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            if size < 24:
                head = handle.read()
                return _parse(path, head, size)
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _parse(path, data, size)
    except OSError as exc:
        raise _open_failure(path, exc) from exc


def _not_gguf(path: Path) -> ModelError:
    return ModelError(
        f"{path} is not a GGUF model (it does not start with 'GGUF')",
        hint="the local runtime serves GGUF files; convert the model or pick another",
    )


def _parse(path: Path, data: mmap.mmap | bytes, size: int) -> GGUFHeader:
    if bytes(data[:4]) != MAGIC:
        raise _not_gguf(path)
    cursor = _Cursor(data)
    try:
        cursor.pos = 4
        version = cursor.unpack(_U32)
        if version not in SUPPORTED_VERSIONS:
            raise ModelError(
                f"{path} is GGUF version {version}; this llama.cpp reads versions 2 and 3",
                hint="re-export the model with a current llama.cpp",
            )
        tensor_count, metadata_count = cursor.unpack(_U64), cursor.unpack(_U64)
        # Each entry takes at least 8 bytes: counts beyond that are garbage, not a model.
        if (tensor_count + metadata_count) * 8 > size:
            raise _Corrupt(f"it declares {tensor_count} tensors and {metadata_count} "
                           f"metadata entries, more than {size} bytes can hold")
        metadata: dict[str, Any] = {}
        for _ in range(metadata_count):
            key = cursor.string()
            metadata[key] = cursor.value(cursor.unpack(_U32))
        tensors = []
        for _ in range(tensor_count):
            name = cursor.string()
            dims = cursor.unpack(_U32)
            if dims > 8:
                raise _Corrupt(f"tensor {name} has {dims} dimensions")
            shape = [cursor.unpack(_U64) for _ in range(dims)]
            tensors.append((name, shape, cursor.unpack(_U32), cursor.unpack(_U64)))
    except _Truncated:
        raise _truncated(path, f"its header ends early (the file has {size} bytes)") from None
    except _Corrupt as why:
        raise ModelError(f"{path} is a corrupt GGUF file: {why}",
                         hint="download or copy the model again") from None

    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT)) or DEFAULT_ALIGNMENT
    data_start = -(-cursor.pos // alignment) * alignment
    return _check_tensors(path, version, metadata, tensors, data_start, size)


def _truncated(path: Path, why: str) -> ModelError:
    return ModelError(
        f"{path} is truncated: {why}",
        hint="the download or copy was cut short; pull or copy the model again",
    )


def _check_tensors(path: Path, version: int, metadata: dict[str, Any],
                   tensors: list[tuple[str, list[int], int, int]], data_start: int,
                   size: int) -> GGUFHeader:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

    parameters = 0
    data_end = data_start
    bytes_by_type: Counter[str] = Counter()
    for name, shape, type_code, offset in tensors:
        elements = 1
        for dim in shape:
            elements *= dim
        parameters += elements
        try:
            kind = GGMLQuantizationType(type_code)
        except ValueError:
            # A quantization newer than our tables: its size is unknown, not wrong.
            continue
        block, block_bytes = GGML_QUANT_SIZES[kind]
        nbytes = elements // block * block_bytes
        bytes_by_type[kind.name] += nbytes
        end = data_start + offset + nbytes
        data_end = max(data_end, end)
        if end > size:
            raise _truncated(path, f"tensor {name} needs bytes up to {end:,} but the file has "
                                   f"{size:,}")
    file_type = metadata.get("general.file_type")
    try:
        quantization = LlamaFileType(file_type).name.removeprefix("MOSTLY_") \
            if isinstance(file_type, int) else ""
    except ValueError:
        quantization = ""
    if not quantization and bytes_by_type:
        quantization = bytes_by_type.most_common(1)[0][0]
    return GGUFHeader(
        version=version, tensor_count=len(tensors), metadata_count=len(metadata),
        metadata=metadata, file_size=size, tensor_bytes=data_end - data_start,
        parameter_count=parameters, quantization=quantization or "unknown",
    )
