"""From a stack plan to the exact containers the docker runtime creates.

Pure: GPU facts come in as a ``GpuReport``, so device requests, image choice (CPU or GPU
build, the TEI tag per compute capability) and mounts are tested without a GPU or engine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import opea
from launcher.checks import Check, gpu_request_check, require
from launcher.errors import GpuUnavailableError
from launcher.gpu import GpuReport
from launcher.plan import Placement, PlannedService, StackPlan, render
from launcher.settings import Settings
from models.errors import ModelError
from opea.stack import Role, tei_gpu_tag

LABEL_MANAGED = "org.opea-chat.managed"
LABEL_SESSION = "org.opea-chat.session"
LABEL_SERVICE = "org.opea-chat.service"
# Which opea-chat home (OPEA_CHAT_HOME or the user's folders) started a container: a stop or
# clean-up in one home never touches another's (a test run beside a user's session, say).
LABEL_HOME = "org.opea-chat.home"
PROJECT_MOUNT = "/home/user/opea-chat/opea"
ALL_GPUS = -1
# Where the default embedding and reranker folders come from (ChatQnA's defaults).
HUB_REPOS = {"bge-base-en-v1.5": "BAAI/bge-base-en-v1.5",
             "bge-reranker-base": "BAAI/bge-reranker-base"}


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class ContainerPlan:
    service: str
    name: str
    image: str
    command: list[str]
    entrypoint: list[str] | None
    environment: dict[str, str]
    container_port: int
    host_port: int
    labels: dict[str, str]
    mounts: list[Mount] = field(default_factory=list)
    # None: no GPU; ALL_GPUS: every GPU; n > 0: that many.
    gpu_count: int | None = None
    shm_size: str | None = None
    # The NVIDIA_REQUIRE_CUDA its GPU image is known to carry (before it is pulled).
    cuda_requirement: str | None = None

    @property
    def ports(self) -> dict[str, tuple[str, int]]:
        # Published on loopback only: nothing opea-chat runs is reachable from the network.
        return {f"{self.container_port}/tcp": ("127.0.0.1", self.host_port)}


def network_name(session: str) -> str:
    return f"opea-chat-{session}"


def home_label(state_dir: Path) -> str:
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]


def session_labels(session: str, home: str) -> dict[str, str]:
    return {LABEL_MANAGED: "true", LABEL_HOME: home, LABEL_SESSION: session}


def gpu_count(gpus: str) -> int | None:
    if gpus == "none":
        return None
    return ALL_GPUS if gpus == "all" else int(gpus)


def gpus_given(wanted: int | None, gpus: GpuReport) -> int:
    """How many GPUs a container with this request sees (at least one)."""
    if wanted is None:
        return 1
    return max(1, len(gpus.gpus)) if wanted == ALL_GPUS else wanted


def _model_mount(plan: StackPlan, models_dir: Path) -> tuple[Path, str]:
    """The folder to mount at /models for the LLM, and the model's path inside it.

    Symbolic links are followed first: a link in the models folder pointing elsewhere would
    dangle inside the container."""
    model = plan.model.path.resolve()
    models_dir = models_dir.resolve()
    if model.is_relative_to(models_dir):
        return models_dir, model.relative_to(models_dir).as_posix()
    return model.parent, model.name


def network_url(service: PlannedService) -> str:
    """How the other containers of the session reach ``service``: by its name, on its
    container port."""
    assert service.spec.container is not None
    return f"http://{service.name}:{service.spec.container.port}"


def container_plans(
    plan: StackPlan,
    settings: Settings,
    session: str,
    home: str,
    models_dir: Path,
    gpus: GpuReport,
) -> tuple[list[ContainerPlan], list[str]]:
    """The containers of ``plan`` and notes worth telling the user."""
    notes: list[str] = []
    llm = plan.service("llm")
    assert llm.spec.container is not None
    model_source, model_file = _model_mount(plan, models_dir)
    shared = {
        **plan.values,
        "model_file": model_file,
        "llm_url": network_url(llm),
        "llm_container_port": str(llm.spec.container.port),
        "megaservice_url": network_url(plan.service("megaservice")),
        # TGI's prompt may use all of the context but the one token it answers with.
        "max_input_tokens": str(max(1, int(plan.values["context_size"]) - 1)),
    }
    wanted_gpus = gpu_count(settings.gpus)
    plans = []
    for service in plan.services:
        if service.placement is not Placement.CONTAINER:
            continue
        container = service.spec.container
        assert container is not None
        use_gpu = service.spec.needs_gpu and wanted_gpus is not None
        image_template = container.gpu_image if use_gpu and container.gpu_image else \
            container.image
        tei_tag = None
        if "{tei_gpu_tag}" in image_template:
            tei_tag = _tei_tag(gpus)
            if tei_tag is None:
                notes.append(f"the {service.name} service runs on the CPU: Text Embeddings "
                             f"Inference has no GPU build for {_describe_gpu(gpus)}")
                # A CPU image with a GPU request would still fail where no GPU can be given.
                image_template, use_gpu = container.image, False
        values = {**shared, "gpu_layers": "999" if use_gpu else "0",
                  "tei_gpu_tag": tei_tag or "",
                  "num_shard": str(gpus_given(wanted_gpus if use_gpu else None, gpus))}
        image = settings.images.get(service.name) or image_template.format_map(values)
        mounts = []
        if container.models_mount:
            source = model_source if service.spec.role is Role.LLM else models_dir
            mounts.append(Mount(str(source), container.models_mount))
        if container.mounts_project:
            mounts.append(Mount(str(Path(opea.__file__).parent), PROJECT_MOUNT))
        plans.append(ContainerPlan(
            service=service.name,
            name=f"opea-chat-{session}-{service.name}",
            image=image,
            command=render(container.command, values),
            entrypoint=list(container.entrypoint) if container.entrypoint else None,
            environment={key: value.format_map(values) for key, value in container.environment},
            container_port=container.port,
            host_port=service.port,
            labels={**session_labels(session, home), LABEL_SERVICE: service.name},
            mounts=mounts,
            gpu_count=wanted_gpus if use_gpu else None,
            shm_size=container.shm_size,
            cuda_requirement=f"cuda>={container.gpu_cuda}" if use_gpu and container.gpu_cuda
            and not settings.images.get(service.name) else None,
        ))
    return plans, notes


def _tei_tag(gpus: GpuReport) -> str | None:
    if not gpus.gpus:
        return None
    return tei_gpu_tag(gpus.gpus[0].compute_capability)


def _describe_gpu(gpus: GpuReport) -> str:
    if not gpus.gpus:
        return "an unknown GPU"
    gpu = gpus.gpus[0]
    return f"{gpu.name} (compute capability {gpu.compute_capability[0]}." \
           f"{gpu.compute_capability[1]})"


def missing_model_folders(plan: StackPlan, models_dir: Path) -> list[str]:
    """The embedding and reranker models the rag profile's containers read from /models but
    that are not in the models folder (they would fail only after every image is pulled)."""
    names = {"embedding_model", "reranker_model"}
    used = {plan.values[name] for name in names if any(
        f"{{{name}}}" in part for service in plan.services if service.spec.container
        for part in (*service.spec.container.command,
                     *(value for _, value in service.spec.container.environment)))}
    return sorted(name for name in used if not (models_dir / name).is_dir())


def check_model_folders(plan: StackPlan, models_dir: Path) -> None:
    missing = missing_model_folders(plan, models_dir)
    if missing:
        raise ModelError(f"the {plan.profile} profile needs {', '.join(missing)} in "
                         f"{models_dir}, which is not there",
                         hint="pull it first: " + "; ".join(
                             f"`opea-chat models pull hf:{HUB_REPOS.get(name, 'OWNER/' + name)}`"
                             for name in missing))


def gpu_request(containers: list[ContainerPlan], gpus: GpuReport,
                nvidia_runtime: bool) -> Check:
    """The verdict on the containers' GPU requests (doctor shows it as it is)."""
    needing = [c.service for c in containers if c.gpu_count is not None]
    counts = [c.gpu_count for c in containers if c.gpu_count is not None]
    wanted = None if ALL_GPUS in counts or not counts else max(c for c in counts if c)
    return gpu_request_check(needing, wanted, gpus, nvidia_runtime)


def check_gpu_request(containers: list[ContainerPlan], gpus: GpuReport,
                      nvidia_runtime: bool) -> None:
    """Refuse before any pull or start when a container asks for GPUs this machine cannot
    give it: otherwise the failure would come only after gigabytes of images."""
    require(gpu_request(containers, gpus, nvidia_runtime), GpuUnavailableError)
