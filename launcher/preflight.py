"""The checks that must pass before a launch pulls or starts anything, built from facts
about this machine; ``opea-chat doctor`` shows the very same checks.

Each function gathers the few facts it needs (free disk, RAM) and returns the verdict of
``launcher.checks``; launch stops on a failing one with ``checks.require``.

The order of a launch is written down here once. First what is known without the model's
bytes: the runtime (and the Docker engine it needs), the ports (an explicit one that is
busy), both when the stack is planned, then ``BEFORE_DOWNLOAD`` below. Only then is the
model pulled, and then what needs its bytes: its header (``models.store.resolve_model``)
and the exact fit. A check that can be judged from metadata belongs in ``BEFORE_DOWNLOAD``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from launcher.checks import (
    RERANKER_VRAM,
    UNPACK_FACTOR,
    Check,
    MemoryTarget,
    Status,
    data_disk_check,
    disk_check,
    failed,
    fit_check,
    gpus_for_llm,
    memory_target,
    require,
)
from launcher.errors import DiskSpaceError, GpuUnavailableError, ImageError, NotEnoughMemoryError
from launcher.gpu import Gpu, GpuReport
from launcher.plan import StackPlan, llm_spec
from launcher.settings import Settings
from models.catalogue import CatalogueEntry
from models.errors import ModelError
from models.formats import FORMATS, ModelFormat
from models.memory import ModelShape, estimate
from models.store import LocalModel
from opea.errors import OpeaChatError
from opea.stack import PROFILES, tei_gpu_tag

if TYPE_CHECKING:
    from docker import DockerClient

    from launcher.docker_plan import ContainerPlan


@dataclass(frozen=True)
class Ram:
    total: int
    available: int


def probe_ram() -> Ram:
    memory = psutil.virtual_memory()
    return Ram(total=int(memory.total), available=int(memory.available))


def free_space(path: Path) -> int | None:
    """Free bytes on the disk that holds ``path`` (or would hold it, once created)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


def model_shape(model: LocalModel) -> ModelShape | None:
    return model.info.shape() if model.info is not None else None


def llm_memory_target(model_format: ModelFormat, settings: Settings, runtime: str, gpus: GpuReport,
                      ram: Ram) -> MemoryTarget:
    """The memory the LLM runs in: the free VRAM of the GPUs its container gets, or RAM."""
    placeholder = LocalModel(model_format, Path(model_format), 0, model_format)
    try:
        needs_gpu = llm_spec(runtime, placeholder).needs_gpu
    except ModelError:  # not servable on this runtime: the plan says so on its own
        needs_gpu = False
    given = gpus_for_llm(runtime, needs_gpu, settings.gpus, gpus)
    return memory_target(FORMATS[model_format].server, given, ram.available, ram.total,
                         reserved=reranker_vram(settings, given))


def reranker_vram(settings: Settings, gpus: list[Gpu] | None) -> int:
    """VRAM the reranker holds on the LLM's first GPU when the LLM starts: in the rag
    profile the reranker starts first on the same GPU (see ``Profile.llm_after``)."""
    if not gpus or "reranking" not in PROFILES[settings.profile].llm_after or \
            tei_gpu_tag(gpus[0].compute_capability) is None:
        return 0
    return RERANKER_VRAM


def model_fit(name: str, shape: ModelShape, model_format: ModelFormat, settings: Settings,
              runtime: str, gpus: GpuReport, ram: Ram) -> Check:
    """Will the model fit the memory it runs in? On the local runtime with a llama.cpp that
    can offload, that is the GPUs' VRAM where the model fits there (the local runtime then
    puts it there, see ``launcher.devices``), else RAM."""
    server = FORMATS[model_format].server
    need = estimate(shape, settings.context_size, server)
    if runtime == "local" and gpus.usable:
        from launcher.devices import llama_cpp_offloads

        if llama_cpp_offloads():
            on_gpu = fit_check(name, need, memory_target(server, list(gpus.gpus), 0, 0),
                               server)
            if on_gpu.status is not Status.FAIL:
                return on_gpu
    return fit_check(name, need, llm_memory_target(model_format, settings, runtime, gpus, ram),
                     server)


def images_disk_check(root: Path, downloads: Mapping[str, int | None]) -> Check:
    """Room in Docker's data root for the images about to be pulled; ``downloads`` maps
    each to its download size (None where the registry did not say)."""
    need = sum(size for size in downloads.values() if size) * UNPACK_FACTOR
    unknown = any(size is None for size in downloads.values())
    what = f"pulling {len(downloads)} image(s)" + (" (of unknown size)" if unknown else "")
    return disk_check("disk images", root, free_space(root), need, what)


def model_download_disk(entry: CatalogueEntry, models_dir: Path) -> Check:
    """Room in the models folder for a catalogue model that is not pulled yet."""
    return disk_check("disk models", models_dir, free_space(models_dir), entry.size_bytes,
                      f"pulling {entry.name}")


def data_disk(data_dir: Path, settings: Settings) -> Check:
    """Room left for the chat history (``status`` and ``doctor`` warn; launch goes on)."""
    return data_disk_check(data_dir, free_space(data_dir), settings.data_disk_warn_mb * 1_000_000)


def awaited_model(entry: CatalogueEntry, models_dir: Path) -> LocalModel:
    """A catalogue model not pulled yet, where its pull will put it (no header read)."""
    return LocalModel(entry.name, models_dir / entry.file_name, entry.size_bytes, entry.format)


@dataclass(frozen=True)
class Prospect:
    """What a launch is about to do, known before the model's bytes are here: the planned
    stack (its model possibly only awaited), the catalogue entry still to pull, and what
    the look at the machine found."""

    settings: Settings
    models_dir: Path
    state_dir: Path
    plan: StackPlan
    download: CatalogueEntry | None
    gpus: GpuReport
    nvidia_runtime: bool
    ram: Ram | None
    client: DockerClient | None = None


def _containers(prospect: Prospect) -> list[ContainerPlan]:
    from launcher.docker_plan import container_plans, home_label

    containers, _ = container_plans(prospect.plan, prospect.settings, "preflight",
                                    home_label(prospect.state_dir), prospect.models_dir,
                                    prospect.gpus)
    return containers


def gpu_request_verdict(prospect: Prospect) -> Check | None:
    """Can Docker give the containers the GPUs they ask for?"""
    if prospect.plan.runtime != "docker":
        return None
    from launcher.docker_plan import gpu_request

    return gpu_request(_containers(prospect), prospect.gpus, prospect.nvidia_runtime)


def rag_folders_verdict(prospect: Prospect) -> Check | None:
    """The embedding and reranker folders the rag containers read."""
    if prospect.plan.runtime != "docker" or prospect.plan.profile == "chat":
        return None
    from launcher.docker_plan import check_model_folders

    try:
        check_model_folders(prospect.plan, prospect.models_dir)
    except OpeaChatError as error:
        return failed("models rag", error.message, error.hint or "")
    return None


def images_verdict(prospect: Prospect) -> Check | None:
    """Under --pull never, every image must be here already."""
    if prospect.plan.runtime != "docker" or prospect.client is None:
        return None
    from launcher.images import images_to_pull, is_present

    images = dict.fromkeys(container.image for container in _containers(prospect))
    try:
        images_to_pull({image: is_present(prospect.client, image) for image in images},
                       prospect.settings.pull)
    except OpeaChatError as error:
        return failed("images", error.message, error.hint or "")
    return None


def model_disk_verdict(prospect: Prospect) -> Check | None:
    """Room in the models folder for the model still to pull."""
    if prospect.download is None:
        return None
    return model_download_disk(prospect.download, prospect.models_dir)


def metadata_fit_verdict(prospect: Prospect) -> Check | None:
    """The memory fit from what is known before the download: the catalogue's shape for a
    model still to pull, the header already read for one that is here."""
    if prospect.plan.runtime == "remote":  # the endpoint's model runs on the endpoint
        return None
    if prospect.download is not None:
        shape: ModelShape | None = prospect.download.shape
        model_format = prospect.download.format
    else:
        shape, model_format = model_shape(prospect.plan.model), prospect.plan.model.format
    if shape is None or prospect.plan.runtime not in FORMATS[model_format].runtimes:
        return None
    return model_fit(prospect.plan.model.name, shape, model_format, prospect.settings,
                     prospect.plan.runtime, prospect.gpus, prospect.ram or probe_ram())


PreCheck = Callable[[Prospect], Check | None]

# Every verdict a launch can reach before downloading anything (model or image), in the
# order it runs them, with the error a failing one becomes.
BEFORE_DOWNLOAD: tuple[tuple[PreCheck, type[OpeaChatError]], ...] = (
    (model_disk_verdict, DiskSpaceError),
    (metadata_fit_verdict, NotEnoughMemoryError),
    (gpu_request_verdict, GpuUnavailableError),
    (rag_folders_verdict, ModelError),
    (images_verdict, ImageError),
)


def before_download(prospect: Prospect) -> list[Check]:
    """Every pre-download verdict that applies, in ``BEFORE_DOWNLOAD``'s order."""
    return [check for verdict, _ in BEFORE_DOWNLOAD
            if (check := verdict(prospect)) is not None]


def require_before_download(prospect: Prospect) -> list[Check]:
    """Stop at the first failing pre-download verdict; return those that passed or warn."""
    found = []
    for verdict, error in BEFORE_DOWNLOAD:
        check = verdict(prospect)
        if check is not None:
            found.append(require(check, error))
    return found
