"""The checks that must pass before a launch pulls or starts anything, built from facts
about this machine; ``opea-chat doctor`` shows the very same checks.

Each function gathers the few facts it needs (free disk, RAM) and returns the verdict of
``launcher.checks``; launch stops on a failing one with ``checks.require``.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from launcher.checks import (
    RERANKER_VRAM,
    UNPACK_FACTOR,
    Check,
    MemoryTarget,
    Status,
    disk_check,
    fit_check,
    gpus_for_llm,
    memory_target,
)
from launcher.gpu import Gpu, GpuReport
from launcher.plan import llm_spec
from launcher.settings import Settings
from models.catalogue import CatalogueEntry
from models.errors import ModelError
from models.formats import FORMATS, ModelFormat
from models.memory import ModelShape, estimate
from models.store import LocalModel
from opea.stack import PROFILES, tei_gpu_tag


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
