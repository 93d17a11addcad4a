"""The runner of the CONTAINER placement: a service as a container through the Docker SDK
(docker-py), on one network per session.

Every container is named and labelled (``org.opea-chat.managed``, ``.session``,
``.service``) so that teardown, ``opea-chat stop`` and a later launch find them by label,
also after a launcher was killed. A container is recorded as soon as it is created, so one
that never started (a refused GPU request) is removed too.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.networks import Network
from docker.types import DeviceRequest
from docker.types import Mount as DockerMount

from launcher.checks import TOOLKIT_HINT
from launcher.docker_engine import gpu_request_refused
from launcher.docker_plan import (
    LABEL_HOME,
    LABEL_MANAGED,
    ContainerPlan,
    network_name,
    session_labels,
)
from launcher.errors import CleanupError, GpuUnavailableError, ServiceStartError
from launcher.plan import PlannedService, StackPlan
from launcher.records import ContainerRecord, ServiceRecord

STOP_TIMEOUT = 10


class ContainerRunner:
    """Starts the containers worked out beforehand (``plans``, set by the runtime once it
    has planned them); their logs are kept in ``log_dir`` when they are removed."""

    def __init__(self, client: docker.DockerClient, session: str, home: str, log_dir: Path):
        self.client = client
        self.session = session
        self.home = home
        self.log_dir = log_dir
        self.plans: dict[str, ContainerPlan] = {}
        self._containers: dict[str, Container] = {}
        self._network: Network | None = None

    def start(self, service: PlannedService, plan: StackPlan) -> None:
        spec = self.plans[service.name]
        container = self.client.containers.create(
            spec.image,
            command=spec.command or None,
            entrypoint=spec.entrypoint,
            name=spec.name,
            labels=spec.labels,
            environment=spec.environment,
            ports=spec.ports,
            mounts=[DockerMount(m.target, m.source, type="bind", read_only=m.read_only)
                    for m in spec.mounts],
            device_requests=[DeviceRequest(count=spec.gpu_count, capabilities=[["gpu"]])]
            if spec.gpu_count is not None else None,
            shm_size=spec.shm_size,
            # A tiny init as PID 1 passes SIGTERM on: a server that installs no handler
            # (OPEA's megaservice) would otherwise ignore it and cost the whole stop timeout.
            init=True,
            network=self._ensure_network().name,
            networking_config={self._ensure_network().name:
                               self.client.api.create_endpoint_config(aliases=[service.name])},
            detach=True,
        )
        # Recorded before start: a container that never starts must still be removed.
        self._containers[service.name] = container
        try:
            container.start()
        except docker.errors.APIError as error:
            if gpu_request_refused(error):
                raise GpuUnavailableError(
                    f"Docker refused the {service.name} service's GPU request "
                    f"({error.explanation}): the NVIDIA Container Toolkit is missing or not "
                    "configured", hint=TOOLKIT_HINT) from error
            raise ServiceStartError(service.name,
                                    f"Docker could not start the {service.name} service: "
                                    f"{error.explanation or error}") from error

    def _ensure_network(self) -> Network:
        if self._network is None:
            self._network = self.client.networks.create(
                network_name(self.session), driver="bridge",
                labels=session_labels(self.session, self.home))
        return self._network

    def exit_status(self, service: str) -> str | None:
        container = self._containers[service]
        try:
            container.reload()
        except docker.errors.NotFound:
            return "was removed"
        state: dict[str, Any] = container.attrs.get("State", {})
        if container.attrs.get("RestartCount", 0) or state.get("Restarting"):
            return "restarted"
        if state.get("Status") in ("exited", "dead"):
            if state.get("OOMKilled"):
                return "was killed for using too much memory (out of memory)"
            return f"exited with code {state.get('ExitCode')}"
        return None

    def log_tail(self, service: str, lines: int = 50) -> str:
        try:
            raw: bytes = self._containers[service].logs(tail=lines)
        except docker.errors.APIError:
            return ""
        return raw.decode("utf-8", errors="replace").rstrip()

    def log_location(self, service: str) -> str:
        return f"`docker logs {self.plans[service].name}`"

    def records(self) -> list[ServiceRecord]:
        return [ContainerRecord(name=name, container=c.name, id=c.id, session=self.session)
                for name, c in self._containers.items()]

    def stop_service(self, service: str) -> None:
        container = self._containers.pop(service, None)
        if container is not None:
            self._remove(service, container)

    def stop_all(self) -> None:
        """Try to remove everything, then report what could not be removed."""
        failed: list[str] = []

        def remove(service: str, container: Container) -> None:
            try:
                self._remove(service, container)
            except docker.errors.APIError as error:
                failed.append(f"container {container.name} ({error.explanation or error})")

        with ThreadPoolExecutor(max_workers=max(1, len(self._containers))) as pool:
            list(pool.map(remove, self._containers, self._containers.values()))
        self._containers.clear()
        if self._network is not None:
            try:
                remove_network(self._network)
            except docker.errors.APIError as error:
                failed.append(f"network {self._network.name} ({error.explanation or error})")
            self._network = None
        if failed:
            raise CleanupError("could not remove " + "; ".join(failed),
                               hint="run `opea-chat stop` to try again")

    def _remove(self, service: str, container: Container) -> None:
        """Stop and remove, keeping the container's log in the log folder first, so that
        `opea-chat logs` still shows why a service failed after the session is gone."""
        with contextlib.suppress(docker.errors.APIError):
            container.stop(timeout=STOP_TIMEOUT)
        with contextlib.suppress(docker.errors.APIError, OSError):
            log = self.log_dir / f"{service}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("ab") as handle:
                handle.write(f"=== container {container.name}\n".encode())
                handle.write(container.logs())
        remove_container(container)


def remove_container(container: Container) -> None:
    """Stop (bounded) and remove, whatever state it is in: created, running or exited."""
    with contextlib.suppress(docker.errors.NotFound):
        container.reload()
        if container.status in ("running", "restarting", "paused"):
            container.stop(timeout=STOP_TIMEOUT)
        container.remove(force=True)


def remove_network(network: Network, attempts: int = 20) -> None:
    """Remove a session network. The engine can still list an endpoint of a container
    removed a moment ago ("has active endpoints"): disconnect what is left and retry."""
    for _ in range(attempts):
        try:
            network.remove()
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as error:
            if "active endpoints" not in str(error):
                raise
            with contextlib.suppress(docker.errors.APIError):
                network.reload()
                for container_id in network.attrs.get("Containers") or {}:
                    network.disconnect(container_id, force=True)
            time.sleep(0.25)
    network.remove()


def remove_leftovers(client: docker.DockerClient, home: str) -> list[str]:
    """Remove every container and network this home's launchers started; return their
    names. Only call it when no launcher of this home runs."""
    labels = [f"{LABEL_MANAGED}=true", f"{LABEL_HOME}={home}"]
    containers = client.containers.list(all=True, filters={"label": labels})
    with ThreadPoolExecutor(max_workers=max(1, len(containers))) as pool:
        list(pool.map(remove_container, containers))
    removed = [container.name for container in containers]
    for network in client.networks.list(filters={"label": labels}):
        with contextlib.suppress(docker.errors.APIError):
            remove_network(network)
            removed.append(network.name)
    return removed
