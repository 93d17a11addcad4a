"""The docker runtime: OPEA's services as containers through the Docker SDK (docker-py),
the app as a local process (its placement, decided in ``launcher.plan``), each started by
the runner of its placement.

What is the runtime's own: planning the session's containers, refusing GPU requests that
cannot work, getting the images, and saying where the model runs.
"""

from __future__ import annotations

import uuid

import docker

from launcher.container_runner import ContainerRunner
from launcher.docker_engine import connect, nvidia_runtime_available
from launcher.docker_plan import (
    check_gpu_request,
    check_model_folders,
    container_plans,
    home_label,
)
from launcher.gpu import GpuReport, describe_gpus, probe_gpus
from launcher.images import ensure_images
from launcher.paths import Paths
from launcher.plan import Placement, StackPlan
from launcher.process_runner import ProcessRunner
from launcher.progress import Progress
from launcher.runner import Runners
from launcher.settings import Settings


def new_session_id() -> str:
    return uuid.uuid4().hex[:8]


class DockerRuntime(Runners):
    name = "docker"

    def __init__(self, settings: Settings, paths: Paths,
                 client: docker.DockerClient | None = None, gpus: GpuReport | None = None):
        self.settings = settings
        self.models_dir = paths.models_dir
        self.home = home_label(paths.state_dir)
        self.client = client or connect()
        self.gpus = gpus if gpus is not None else probe_gpus()
        self.session = new_session_id()
        self._containers = ContainerRunner(self.client, self.session, self.home,
                                           paths.log_dir)
        # Records list the containers first; stopping ends the processes first.
        super().__init__({Placement.CONTAINER: self._containers,
                          Placement.PROCESS: ProcessRunner(paths.log_dir)})

    def plan_containers(self, plan: StackPlan) -> list[str]:
        """Work out every container of the session; return notes for the user."""
        plans, notes = container_plans(plan, self.settings, self.session, self.home,
                                       self.models_dir, self.gpus)
        self._containers.plans = {p.service: p for p in plans}
        return notes

    def prepare(self, plan: StackPlan, progress: Progress) -> None:
        """Plan the containers, refuse GPU requests that cannot work, get the images."""
        for note in self.plan_containers(plan):
            progress.note(note)
        plans = list(self._containers.plans.values())
        check_model_folders(plan, self.models_dir)
        check_gpu_request(plans, self.gpus, nvidia_runtime_available(self.client))
        ensure_images(self.client, [p.image for p in plans], self.settings.pull, progress)

    def device(self) -> str:
        llm = self._containers.plans.get("llm")
        if llm is None or llm.gpu_count is None or not self.gpus.gpus:
            return "CPU (the LLM container has no GPU)"
        return "GPU: " + describe_gpus(self.gpus)

    def elsewhere(self) -> dict[str, str]:
        return {}  # every service of the stack runs here

    def elsewhere_healthy(self, service: str) -> bool:
        raise KeyError(service)
