"""The local runtime: the OPEA stack as child processes of the launcher, no Docker needed.

- LLM: llama-cpp-python's OpenAI-compatible server with the GGUF model;
- megaservice: ``opea.megaservice`` (OPEA's orchestrator from opea-comps);
- app: the Streamlit chat page.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from pathlib import Path

# The model's placement (how many layers on which GPU), not a service's (launcher.plan).
from launcher.devices import Placement as ModelPlacement
from launcher.devices import describe_device, llama_cpp_offloads, model_need, place_model
from launcher.gpu import GpuReport, probe_gpus
from launcher.plan import Placement, StackPlan

# Re-exported for the tests and bench scripts that import them from here.
from launcher.process_runner import APP_SCRIPT as APP_SCRIPT
from launcher.process_runner import ProcessRunner
from launcher.process_runner import child_environment as child_environment
from launcher.process_runner import local_values as local_values
from launcher.process_runner import service_command as service_command
from launcher.progress import Progress
from launcher.runner import Runners
from opea.stack import Role


def ensure_embedding_model(folder: Path, progress: Progress) -> None:
    """Pull a catalogue embedding model that is not there yet; check one that is."""
    from models.embedding import (
        EMBEDDING_CATALOGUE,
        check_embedding_folder,
        pull_embedding_model,
    )

    if not folder.exists() and folder.name in EMBEDDING_CATALOGUE:
        progress.note(f"First rag launch: the embedding model {folder.name} is not in "
                      f"{folder.parent} yet; pulling it now.")
        pull_embedding_model(folder.name, folder.parent, say=progress.note,
                             show_progress=progress.interactive)
    check_embedding_folder(folder)


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name}, {os.cpu_count() or 1} threads"


class LocalRuntime(Runners):
    """Every service is a process (``placement_of`` places nothing else on this runtime);
    what is left to the runtime is where the model runs: how many layers go to the GPU."""

    name = "local"

    def __init__(self, log_dir: Path, gpus: GpuReport | None = None):
        self.log_dir = log_dir
        self._gpus = gpus
        self._placement: ModelPlacement | None = None
        super().__init__({Placement.PROCESS: ProcessRunner(log_dir, lambda: self.gpu_layers)})

    @property
    def gpus(self) -> GpuReport:
        if self._gpus is None:
            self._gpus = probe_gpus()
        return self._gpus

    @property
    def placement(self) -> ModelPlacement:
        """Where the LLM runs; before ``prepare`` has seen the model, on the GPU wherever
        this llama.cpp build and the machine allow it (asked once: it loads llama.cpp and
        may probe NVML)."""
        if self._placement is None:
            self._placement = place_model(self.gpus, self._offloads, "the model", None)
        return self._placement

    @functools.cached_property
    def _offloads(self) -> bool:
        return self.gpus.usable and llama_cpp_offloads()

    @property
    def gpu_layers(self) -> int:
        return self.placement.gpu_layers

    def prepare(self, plan: StackPlan, progress: Progress) -> None:
        """The packages are installed and the LLM is on disk (the rag profile's embedding
        model is pulled here on its first launch, like the LLM on the first chat launch).
        Decide where the model runs: on the GPU if llama.cpp can offload and it fits."""
        if any(service.spec.role is Role.EMBEDDING for service in plan.services):
            ensure_embedding_model(Path(plan.values["embedding_model_dir"]), progress)
        if self.gpus.usable:
            need = model_need(plan.model, int(plan.values["context_size"]))
            self._placement = place_model(self.gpus, self._offloads, plan.model.name, need)
            # Under the Runtime line: which device runs the model, and why not the GPU.
            progress.note(f"Device: {self.device()}")

    def device(self) -> str:
        return describe_device(self.placement, self.gpus, cpu_name())

    def elsewhere(self) -> dict[str, str]:
        return {}  # every service of the stack runs here

    def elsewhere_healthy(self, service: str) -> bool:
        raise KeyError(service)
