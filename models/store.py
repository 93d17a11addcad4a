"""The models directory: which models are there, finding one by name or path (checked
before any server sees it), and removing one.

Unfinished pulls live under hidden ``.NAME.part`` names, which this listing never shows: a
pull that failed or was interrupted never leaves something that looks like a model.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from models.catalogue import CATALOGUE, CatalogueEntry
from models.errors import ModelError
from models.formats import ModelFormat
from models.gguf import GGUFHeader, read_header
from models.hf_folder import CONFIG, INDEX, HFFolder, check_folder

ModelInfo = GGUFHeader | HFFolder


class ModelNotPulledError(ModelError):
    """A catalogue model whose file is not in the models directory yet."""

    def __init__(self, entry: CatalogueEntry, models_dir: Path):
        super().__init__(
            f"model {entry.name} is not in {models_dir} yet",
            hint=f"run `opea-chat models pull {entry.name}`",
        )
        self.entry = entry


@dataclass(frozen=True)
class LocalModel:
    name: str
    path: Path
    size_bytes: int
    format: ModelFormat = ModelFormat.GGUF
    # What the checks read from the model's files, once it has been checked.
    info: ModelInfo | None = field(default=None, compare=False, repr=False)


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _is_hidden(path: Path) -> bool:
    # Unfinished pulls (.NAME.part) and the hub's own bookkeeping (.cache) start with a dot.
    return path.name.startswith(".") or path.name.endswith(".part")


def _looks_like_model_folder(path: Path) -> bool:
    """A folder meant to be a model, broken or not: doctor must see a folder whose
    config.json is missing, not skip it."""
    return (path / CONFIG).is_file() or (path / INDEX).is_file() or \
        any(path.glob("*.safetensors"))


def inspect_model(model: LocalModel) -> ModelInfo:
    """Read and check the model's files; raise ``ModelError`` saying what is wrong."""
    if model.format == ModelFormat.HF_FOLDER:
        return check_folder(model.path)
    return read_header(model.path)


def checked(model: LocalModel) -> LocalModel:
    return LocalModel(model.name, model.path, model.size_bytes, model.format,
                      info=inspect_model(model))


def _models_in(models_dir: Path) -> list[tuple[str, Path, ModelFormat]]:
    """Name, path and format of each model in the models directory: GGUF files (named by
    catalogue name where known, else by stem), then Hugging Face model folders (by
    folder name)."""
    if not models_dir.is_dir():
        return []
    by_file = {entry.file_name: entry.name for entry in CATALOGUE.values()}
    found = [(by_file.get(path.name, path.stem), path, ModelFormat.GGUF)
             for path in sorted(models_dir.glob("*.gguf"))
             if not _is_hidden(path) and path.is_file()]
    found += [(path.name, path, ModelFormat.HF_FOLDER) for path in sorted(models_dir.iterdir())
              if path.is_dir() and not _is_hidden(path) and _looks_like_model_folder(path)]
    return found


def list_models(models_dir: Path) -> list[LocalModel]:
    """The models in the models directory with their sizes, unchecked."""
    return [LocalModel(name=name, path=path, format=model_format,
                       size_bytes=path.stat().st_size if model_format == ModelFormat.GGUF
                       else _folder_size(path))
            for name, path, model_format in _models_in(models_dir)]


def model_names(models_dir: Path) -> list[str]:
    """The names ``list_models`` gives, without walking folders for their sizes (the app
    asks on every rerun)."""
    return [name for name, _, _ in _models_in(models_dir)]


def unfinished_pulls(models_dir: Path) -> list[Path]:
    """What interrupted pulls left (kept so that the same pull resumes)."""
    if not models_dir.is_dir():
        return []
    return sorted(path for path in models_dir.iterdir() if path.name.endswith(".part"))


def looks_like_path(spec: str) -> bool:
    return "/" in spec or "\\" in spec or spec.startswith(("~", ".")) or spec.endswith(".gguf")


def resolve_model(spec: str, models_dir: Path) -> LocalModel:
    """Turn ``--model NAME|PATH`` into a checked model, or say clearly why not."""
    if looks_like_path(spec):
        path = Path(spec).expanduser().resolve()
        if not path.exists():
            raise ModelError(f"no model file at {path}", hint="check the path given to --model")
        if path.is_dir():
            return checked(LocalModel(name=path.name, path=path,
                                      size_bytes=_folder_size(path), format=ModelFormat.HF_FOLDER))
        return checked(LocalModel(name=path.stem, path=path, size_bytes=path.stat().st_size))

    found = find_model(spec, models_dir)
    if found is not None:
        return checked(found)
    entry = CATALOGUE.get(spec.lower())
    if entry is not None:
        raise ModelNotPulledError(entry, models_dir)
    names = sorted({*(m.name.lower() for m in list_models(models_dir)), *CATALOGUE})
    raise ModelError(
        f"unknown model '{spec}'",
        hint=f"models found: {', '.join(names)}; or give the path of a .gguf file",
    )


def find_model(name: str, models_dir: Path) -> LocalModel | None:
    local = {model.name.lower(): model for model in list_models(models_dir)}
    return local.get(name.lower())


def delete_model_path(path: Path) -> None:
    """Delete a model file, a link to one, or a model folder; nothing if it is not there."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def remove_model(name: str, models_dir: Path, in_use: Path | None = None) -> LocalModel:
    """Remove exactly the model called ``name``: its file, its folder, or (for a model
    added with a link) the link only, never what it points to."""
    model = find_model(name, models_dir)
    if model is None:
        names = ", ".join(m.name for m in list_models(models_dir)) or "none"
        raise ModelError(f"no model named '{name}' in {models_dir}",
                         hint=f"models there: {names} (see `opea-chat models list`)")
    if in_use is not None and model.path.resolve() == in_use.resolve():
        raise ModelError(f"model {model.name} is in use by the running opea-chat",
                         hint="stop it first with `opea-chat stop`")
    delete_model_path(model.path)
    return model
