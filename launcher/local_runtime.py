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
import sys
from importlib.util import find_spec
from pathlib import Path

from launcher.devices import (
    Placement,
    describe_device,
    llama_cpp_offloads,
    model_need,
    place_model,
)
from launcher.errors import ConfigError
from launcher.gpu import GpuReport, probe_gpus
from launcher.plan import PlannedService, StackPlan, render
from launcher.ports import HOST
from launcher.processes import (
    ChildProcess,
    describe_exit,
    log_tail,
    start_child,
    stop_child,
    stop_children,
)
from launcher.progress import Progress
from launcher.records import ServiceRecord
from opea.stack import APP_MODULE, MEGASERVICE_URL_VARIABLE, Role


def _module_file(name: str) -> Path:
    """The file of one of this project's modules, found by name: the launcher runs the app's
    page script but does not import the app (the layering rule in pyproject.toml)."""
    spec = find_spec(name)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    return Path(spec.origin)


APP_SCRIPT = _module_file(APP_MODULE)


def child_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    # Loopback traffic must never go through a proxy (OPEA's aiohttp calls trust the env).
    loopback = "127.0.0.1,localhost"
    for name in ("no_proxy", "NO_PROXY"):
        env[name] = f"{env[name]},{loopback}" if env.get(name) else loopback
    # OPEA turns on OTLP export when this is set, and logs tracebacks when nothing listens.
    env.pop("TELEMETRY_ENDPOINT", None)
    # Only `models pull` needs the user's Hugging Face token; no service gets it, so no
    # service can log it.
    env.pop("HF_TOKEN", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def local_values(service: PlannedService, plan: StackPlan, gpu_layers: int = 0
                 ) -> dict[str, str]:
    """The template values of one service running as a process on 127.0.0.1."""
    urls = {planned.name.replace("-", "_") + "_url": planned.url for planned in plan.services}
    return {**plan.values, **urls, "python": sys.executable, "host": HOST,
            "port": str(service.port), "app_script": str(APP_SCRIPT),
            "gpu_layers": str(gpu_layers)}


def service_command(service: PlannedService, plan: StackPlan, gpu_layers: int = 0
                    ) -> list[str]:
    if service.spec.local_command is None:
        raise ConfigError(f"the {service.name} service runs only as a container",
                          hint="use --runtime docker")
    return render(service.spec.local_command, local_values(service, plan, gpu_layers))


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name}, {os.cpu_count() or 1} threads"


class LocalRuntime:
    name = "local"

    def __init__(self, log_dir: Path, gpus: GpuReport | None = None):
        self.log_dir = log_dir
        self._gpus = gpus
        self._children: dict[str, ChildProcess] = {}
        self._placement: Placement | None = None

    @property
    def gpus(self) -> GpuReport:
        if self._gpus is None:
            self._gpus = probe_gpus()
        return self._gpus

    @property
    def placement(self) -> Placement:
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
        """Nothing to fetch: the packages are installed, the model is on disk. Decide where
        the model runs: on the GPU if llama.cpp can offload and the model fits its VRAM."""
        if self.gpus.usable:
            need = model_need(plan.model, int(plan.values["context_size"]))
            self._placement = place_model(self.gpus, self._offloads, plan.model.name, need)
            # Under the Runtime line: which device runs the model, and why not the GPU.
            progress.note(f"Device: {self.device()}")

    def start(self, service: PlannedService, plan: StackPlan) -> None:
        env = child_environment()
        if service.spec.role is Role.UI:
            env[MEGASERVICE_URL_VARIABLE] = plan.service("megaservice").url
        self._children[service.name] = start_child(
            service.name,
            # Only the LLM server has layers to place: the others need not load llama.cpp
            # or probe the GPUs (the docker runtime starts the app through this class).
            service_command(service, plan,
                            self.gpu_layers if service.spec.role is Role.LLM else 0),
            self.log_dir / f"{service.name}.log",
            env,
        )

    def exit_status(self, service: str) -> str | None:
        code = self._children[service].exit_code()
        return None if code is None else describe_exit(code)

    def log_tail(self, service: str, lines: int = 50) -> str:
        return log_tail(self._children[service].log_path, lines)

    def device(self) -> str:
        return describe_device(self.placement, self.gpus, cpu_name())

    def log_location(self, service: str) -> str:
        return str(self.log_dir / f"{service}.log")

    def records(self) -> list[ServiceRecord]:
        return [child.record() for child in self._children.values()]

    def stop_service(self, service: str) -> None:
        child = self._children.pop(service, None)
        if child is not None:
            stop_child(child)

    def stop_all(self) -> None:
        stop_children([self._children[name] for name in reversed(list(self._children))])
