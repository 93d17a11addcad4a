"""Checking a Hugging Face model folder before TGI or vLLM is asked to load it.

A folder serves when its ``config.json`` parses, every weight shard its index lists is there
and whole, and a tokenizer is present. Shards are safetensors files: an 8-byte little-endian
header length, a JSON header naming each tensor's dtype, shape and byte range, then the
data. Reading the headers (a few kB each) gives the parameter count and the bytes of weights,
and shows a truncated shard without reading its data.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.errors import ModelError
from models.memory import ModelShape

CONFIG = "config.json"
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
# Any of these is a tokenizer TGI and vLLM can load (fast, SentencePiece, BPE vocabulary).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tiktoken.model")
# A safetensors header is JSON describing tensors; anything near this size is not one.
MAX_HEADER_BYTES = 100 * (1 << 20)
REDOWNLOAD = "download the model folder again (opea-chat models pull hf:REPO)"


@dataclass(frozen=True)
class HFFolder:
    path: Path
    config: dict[str, Any]
    shards: tuple[Path, ...]
    tokenizer: Path
    parameter_count: int
    weight_bytes: int
    dtype: str  # the dtype holding most of the weights, e.g. "BF16"

    @property
    def architecture(self) -> str:
        names = self.config.get("architectures")
        if isinstance(names, list) and names:
            return str(names[0])
        return str(self.config.get("model_type", "unknown"))

    def _int(self, *keys: str) -> int | None:
        for key in keys:
            value = self.config.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None

    @property
    def context_length(self) -> int | None:
        return self._int("max_position_embeddings", "n_positions", "seq_length")

    def shape(self) -> ModelShape:
        heads = self._int("num_attention_heads", "n_head")
        hidden = self._int("hidden_size", "n_embd")
        head_dim = self._int("head_dim") or (hidden // heads if hidden and heads else None)
        return ModelShape(
            weight_bytes=self.weight_bytes,
            layers=self._int("num_hidden_layers", "n_layer"),
            kv_heads=self._int("num_key_value_heads") or heads,
            head_dim=head_dim,
            context_length=self.context_length,
        )


def _broken(folder: Path, why: str, hint: str = REDOWNLOAD) -> ModelError:
    return ModelError(f"{folder} is not a usable Hugging Face model folder: {why}", hint=hint)


def _read_json(folder: Path, name: str) -> dict[str, Any]:
    try:
        data = json.loads((folder / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _broken(folder, f"{name} is missing") from None
    except json.JSONDecodeError as exc:
        raise _broken(folder, f"{name} is not valid JSON (line {exc.lineno}: {exc.msg})") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _broken(folder, f"{name} cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise _broken(folder, f"{name} does not hold a JSON object")
    return data


def _shard_names(folder: Path) -> list[str]:
    if (folder / INDEX).exists():
        index = _read_json(folder, INDEX)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise _broken(folder, f"{INDEX} has no weight_map")
        return sorted({str(name) for name in weight_map.values()})
    if (folder / SINGLE).exists():
        return [SINGLE]
    if list(folder.glob("*.bin")):
        raise _broken(folder, "its weights are PyTorch .bin files, not safetensors",
                      hint="download the safetensors weights of the model; TGI and vLLM "
                           "load them safely and opea-chat can check them")
    raise _broken(folder, f"no weights ({INDEX} or {SINGLE})")


@dataclass(frozen=True)
class _ShardHeader:
    parameters: int
    data_bytes: int
    bytes_by_dtype: dict[str, int]


def read_safetensors_header(path: Path) -> _ShardHeader:
    """Read one shard's header and check the file holds every byte it declares."""
    folder = path.parent
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            raw_length = handle.read(8)
            if len(raw_length) < 8:
                raise _broken(folder, f"{path.name} is truncated (shorter than a header)")
            (length,) = struct.unpack("<Q", raw_length)
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise _broken(folder, f"{path.name} is not a safetensors file, or is "
                                      "truncated (its header length is impossible)")
            header = json.loads(handle.read(length))
    except (OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise _broken(folder, f"weight shard {path.name} is missing") from None
        raise _broken(folder, f"{path.name} has a corrupt header ({exc})") from None
    if not isinstance(header, dict):
        raise _broken(folder, f"{path.name} has a corrupt header")
    parameters, end = 0, 0
    by_dtype: dict[str, int] = {}
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape = str(tensor["dtype"]), [int(d) for d in tensor["shape"]]
            begin, stop = (int(x) for x in tensor["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise _broken(folder, f"{path.name} describes tensor {name} wrongly") from None
        elements = 1
        for dim in shape:
            elements *= dim
        parameters += elements
        by_dtype[dtype] = by_dtype.get(dtype, 0) + (stop - begin)
        end = max(end, stop)
    if 8 + length + end > size:
        raise _broken(folder, f"{path.name} is truncated: its tensors need "
                              f"{8 + length + end:,} bytes but the file has {size:,}")
    return _ShardHeader(parameters, end, by_dtype)


def _tokenizer(folder: Path) -> Path:
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            return folder / name
    raise _broken(folder, "no tokenizer (tokenizer.json, tokenizer.model or vocab.json)",
                  hint="download the tokenizer files of the model into the folder too")


def check_folder(folder: Path) -> HFFolder:
    """Check ``folder`` can be served; raise ``ModelError`` saying what is wrong."""
    config = _read_json(folder, CONFIG)
    names = _shard_names(folder)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        listed = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more"
                                             if len(missing) > 3 else "")
        raise _broken(folder, f"weight shard {listed} listed in {INDEX} is missing")
    headers = [read_safetensors_header(folder / name) for name in names]
    by_dtype: dict[str, int] = {}
    for header in headers:
        for dtype, count in header.bytes_by_dtype.items():
            by_dtype[dtype] = by_dtype.get(dtype, 0) + count
    return HFFolder(
        path=folder,
        config=config,
        shards=tuple(folder / name for name in names),
        tokenizer=_tokenizer(folder),
        parameter_count=sum(h.parameters for h in headers),
        weight_bytes=sum(h.data_bytes for h in headers),
        dtype=max(by_dtype, key=lambda d: by_dtype[d]) if by_dtype else "unknown",
    )
