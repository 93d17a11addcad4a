"""Planning a launch: which services, on which ports, with which timeouts and values.

Pure: the port probes are passed in, so tests can plan against any state of the machine.
A port left at its default that is taken is replaced by a free one (and the plan says so);
a port the user set explicitly is never silently changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from launcher import __version__
from launcher.errors import ConfigError, PortInUseError
from launcher.paths import resolve_paths
from launcher.ports import HOST
from launcher.settings import Settings
from models.embedding import local_embedding_model
from models.errors import ModelError
from models.formats import ModelFormat
from models.store import LocalModel
from opea.stack import (
    LLAMA_CPP_PYTHON,
    LLAMA_CPP_SERVER,
    PROFILES,
    REMOTE_APP,
    TGI,
    Role,
    ServiceSpec,
)

# The local rag profile's index folder (in the data folder), as rag/README.md names it.
RAG_FOLDER = "rag"


class Placement(StrEnum):
    """Where a planned service runs; each placement has its runner (``launcher.runner``)."""

    PROCESS = "process"  # a child process of the launcher, on 127.0.0.1
    CONTAINER = "container"  # a container of the session's Docker network


@dataclass(frozen=True)
class PlannedService:
    spec: ServiceSpec
    port: int
    start_timeout: float
    placement: Placement = Placement.PROCESS

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def health_url(self) -> str:
        return self.url + self.spec.health.path


@dataclass(frozen=True)
class StackPlan:
    profile: str
    runtime: str
    services: tuple[PlannedService, ...]
    model: LocalModel
    # Template values every service may use ({model_name}, {context_size}, ...).
    values: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def service(self, name: str) -> PlannedService:
        for planned in self.services:
            if planned.name == name:
                return planned
        raise KeyError(name)


def render(template: tuple[str, ...], values: Mapping[str, str]) -> list[str]:
    return [part.format_map(values) for part in template]


def llm_spec(runtime: str, model: LocalModel) -> ServiceSpec:
    """Which LLM server serves this model on this runtime."""
    if runtime == "local":
        if model.format != ModelFormat.GGUF:
            raise ModelError(
                f"{model.path} is a Hugging Face folder; the local runtime serves GGUF files",
                hint="use --runtime docker (TGI serves folders), or pick a .gguf model",
            )
        return LLAMA_CPP_PYTHON
    return LLAMA_CPP_SERVER if model.format == ModelFormat.GGUF else TGI


def profile_services(profile: str, runtime: str, model: LocalModel) -> tuple[ServiceSpec, ...]:
    if runtime == "remote":  # the profile's services are the endpoint's business
        return (REMOTE_APP,)
    services = PROFILES[profile].services_on(runtime)
    if services is None:
        raise ConfigError(f"the {profile} profile runs OPEA's containers",
                          hint="use --runtime docker, or --profile chat")
    llm = llm_spec(runtime, model)
    # The LLM waits for these (those the runtime runs) and starts right after the last.
    after = [name for name in PROFILES[profile].llm_after
             if any(spec.name == name for spec in services)]
    if not after:
        return (llm, *services)
    position = max(i for i, spec in enumerate(services) if spec.name in after) + 1
    llm = replace(llm, waits_for=(*llm.waits_for, *after))
    return (*services[:position], llm, *services[position:])


def placement_of(spec: ServiceSpec, runtime: str) -> Placement:
    """Where a service runs on a runtime; decided here only. The docker runtime runs every
    service that has an image in a container except the app, which runs as a process
    beside the launcher on every runtime: it is the user's window onto the stack, not part
    of the GPU stack. The local and remote runtimes run processes only."""
    if runtime != "docker" or spec.container is None or spec.role is Role.UI:
        return Placement.PROCESS
    return Placement.CONTAINER


def embedding_folder(settings: Settings, models_dir: Path) -> Path:
    """The local rag profile's embedding model folder: a name in the models folder, or a
    path (``--embedding-model``); the setting's default means the local default model."""
    name = local_embedding_model(settings.embedding_model,
                                 settings.is_default("embedding_model"))
    if "/" in name or name.startswith((".", "~")):
        return Path(name).expanduser()
    return models_dir / name.lower()


def template_values(settings: Settings, model: LocalModel) -> dict[str, str]:
    # The folders of this home: the same resolution as the launcher's own (OPEA_CHAT_HOME).
    paths = resolve_paths()
    return {
        "embedding_model_dir": str(embedding_folder(settings, paths.models_dir)),
        "rag_dir": str(paths.data_dir / RAG_FOLDER),
        "model_name": model.name,
        "model_path": str(model.path),
        "model_file": model.path.name,
        "context_size": str(settings.context_size),
        "threads": str(settings.llm_threads or os.cpu_count() or 1),
        "embedding_model": settings.embedding_model,
        "reranker_model": settings.reranker_model,
        # OPEA's REGISTRY: it replaces the `opea` namespace (``${REGISTRY:-opea}/chatqna``).
        "registry": settings.registry.rstrip("/") or "opea",
        "tag": settings.tag,
        "version": __version__,
    }


def _check_order(specs: tuple[ServiceSpec, ...]) -> None:
    known: set[str] = set()
    for spec in specs:
        missing = set(spec.waits_for) - known
        if missing:
            raise ValueError(f"{spec.name} waits for {missing}, which do not start before it")
        known.add(spec.name)


def plan_stack(
    settings: Settings,
    model: LocalModel,
    is_free: Callable[[int], bool],
    pick_free: Callable[[], int],
    runtime: str = "local",
) -> StackPlan:
    specs = profile_services(settings.profile, runtime, model)
    _check_order(specs)
    planned: list[PlannedService] = []
    notes: list[str] = []
    taken: dict[int, ServiceSpec] = {}
    for spec in specs:
        setting = spec.port_setting
        wanted: int = getattr(settings, setting) if setting else spec.default_port
        port = wanted
        explicit = setting is not None and not settings.is_default(setting)
        earlier = taken.get(wanted)
        if explicit and earlier is not None and earlier.port_setting is not None \
                and not settings.is_default(earlier.port_setting):
            assert setting is not None
            raise PortInUseError(
                f"port {wanted} was given twice: to the {earlier.name} service "
                f"({earlier.port_setting}, from {settings.source_of(earlier.port_setting)}) "
                f"and to the {spec.name} service ({setting}, from "
                f"{settings.source_of(setting)})",
                hint="give each service its own port")
        if wanted in taken or not is_free(wanted):
            if explicit:
                assert setting is not None
                flag = "--" + setting.replace("_", "-")
                raise PortInUseError(
                    f"port {wanted} for the {spec.name} service is already in use "
                    f"({setting}, from {settings.source_of(setting)})",
                    hint=f"stop what uses it, or choose another port with {flag}",
                )
            port = next((p for p in (pick_free() for _ in range(100)) if p not in taken), 0)
            if not port:
                raise PortInUseError(f"found no free port for the {spec.name} service")
            notes.append(f"port {wanted} ({spec.name}) is in use; using {port} instead")
        taken[port] = spec
        timeout = (getattr(settings, spec.timeout_setting) if spec.timeout_setting
                   else spec.default_timeout)
        planned.append(PlannedService(spec=spec, port=port, start_timeout=timeout,
                                      placement=placement_of(spec, runtime)))
    notes += PROFILES[settings.profile].notes_on(runtime)
    return StackPlan(profile=settings.profile, runtime=runtime, services=tuple(planned),
                     model=model, values=template_values(settings, model), notes=tuple(notes))
