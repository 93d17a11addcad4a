"""One look at the machine: the GPUs (NVML), the Docker engine (version, runtimes, CDI,
image folder) and the RAM, probed once, side by side, under one deadline.

``launch`` and ``doctor`` take this look once and pass the facts on: to reaping what a
killed launcher left, to the runtime choice, to the runtimes and to the fit checks. Each
probe runs in a daemon thread: a hung driver or an engine that accepts connections and
never answers becomes a "did not answer" finding at the deadline, never a hang. Docker is
asked only when the caller may need it: ``launch --runtime local`` never touches it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Generic, TypeVar

from launcher.docker_engine import DockerFacts, probe_docker
from launcher.errors import DockerUnavailableError
from launcher.gpu import GpuReport, probe_gpus, slow_report
from launcher.preflight import Ram, probe_ram
from launcher.runtime_choice import Machine
from opea.errors import OpeaChatError

if TYPE_CHECKING:
    from docker import DockerClient

T = TypeVar("T")
# The Docker client's own timeout never goes below this (docker-py rounds to seconds).
MIN_DOCKER_TIMEOUT = 0.5
RUNTIME_TIMEOUT = 10
NOT_ASKED = "not asked (Docker is not needed here)"


class ProbeTimeout(Exception):
    """A probe that did not answer before the deadline (it goes on in the background, in
    a daemon thread that does not keep the process from exiting)."""


class Probe(Generic[T]):
    """One probe running in a daemon thread."""

    def __init__(self, what: str, probe: Callable[[], T]):
        self.what = what
        self.started = time.monotonic()
        self._result: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(probe,), daemon=True,
                                        name=f"probe: {what}")
        self._thread.start()

    def _run(self, probe: Callable[[], T]) -> None:
        try:
            self._result = probe()
        except BaseException as error:  # a probe's failure is a finding, never a crash
            self._error = error

    def result(self, deadline: float) -> T:
        """The probe's result; raise what it raised, or ``ProbeTimeout`` after the deadline."""
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            raise ProbeTimeout(f"{self.what} did not answer within "
                               f"{max(0.0, deadline - self.started):.1f} s")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]


def describe_failure(error: BaseException) -> str:
    if isinstance(error, ProbeTimeout | OpeaChatError):
        return str(error)
    return f"{type(error).__name__}: {error}"


@dataclass
class MachineFacts:
    """What one look found. ``client`` is the Docker connection the probe opened (None
    when Docker was not asked or did not answer); whoever keeps the facts closes it."""

    gpus: GpuReport
    docker: DockerFacts
    ram: Ram | None
    client: DockerClient | None = field(default=None, repr=False)

    @property
    def docker_asked(self) -> bool:
        return self.docker.problem != NOT_ASKED

    def for_runtime_choice(self) -> Machine:
        return Machine(self.docker.problem, self.docker.nvidia_runtime, self.gpus)

    def docker_client(self) -> DockerClient:
        """The engine's client, or the reason it cannot be had, as the user's error."""
        if self.client is None:
            from launcher.docker_engine import START_HINT

            raise DockerUnavailableError(self.docker.problem or "cannot reach the Docker "
                                         "engine", hint=START_HINT)
        # The probe's client answers within the look's deadline; a running stack's requests
        # (creating, stopping containers) get the engine's usual time.
        self.client.api.timeout = RUNTIME_TIMEOUT
        return self.client

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class Look:
    """The probes, started at once; ``facts`` collects them by the deadline (so work done
    in between, like resolving the model, overlaps with them)."""

    def __init__(self, deadline: float, docker: bool):
        self.deadline = deadline
        self._gpus = Probe("the NVIDIA driver (NVML)", probe_gpus)
        self._ram = Probe("RAM", probe_ram)
        budget = max(MIN_DOCKER_TIMEOUT, deadline - time.monotonic())
        self._docker = Probe("the Docker engine", partial(probe_docker, budget)) \
            if docker else None

    def facts(self) -> MachineFacts:
        try:
            gpus = self._gpus.result(self.deadline)
        except ProbeTimeout:  # a driver without persistence mode: slow, not absent
            gpus = slow_report(time.monotonic() - self._gpus.started)
        except BaseException as error:
            gpus = GpuReport(problem=f"probing the GPUs failed: {describe_failure(error)}")
        docker_facts: DockerFacts
        client: DockerClient | None = None
        if self._docker is None:
            docker_facts = DockerFacts(problem=NOT_ASKED)
        else:
            try:
                docker_facts, client = self._docker.result(self.deadline)
            except BaseException as error:
                docker_facts = DockerFacts(problem=describe_failure(error))
        try:
            ram: Ram | None = self._ram.result(self.deadline)
        except BaseException:
            ram = None
        return MachineFacts(gpus=gpus, docker=docker_facts, ram=ram, client=client)


def look_at_machine(deadline: float, docker: bool) -> MachineFacts:
    return Look(deadline, docker).facts()
