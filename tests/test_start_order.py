"""The start order of a launch, with real processes: a service starts as soon as what it
waits for is healthy, independent services start together, and the first failure ends
every wait at once."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from launcher.errors import ServiceExitedError
from launcher.launch import start_services
from launcher.plan import PlannedService, StackPlan
from launcher.ports import pick_free_port
from launcher.progress import Progress
from launcher.signals import StopRequest
from models.store import LocalModel
from opea.stack import Health, Role, ServiceSpec
from tests.command_runtime import CommandRuntime


class RecordingRuntime(CommandRuntime):
    def __init__(self, commands: dict[str, list[str]], log_dir: Path):
        super().__init__(commands, log_dir)
        self.started: dict[str, float] = {}

    def start(self, service: PlannedService, plan: StackPlan | None = None) -> None:
        self.started[service.name] = time.monotonic()
        super().start(service, plan)


class RecordingProgress(Progress):
    def __init__(self) -> None:
        super().__init__(Console(file=io.StringIO()))
        self.healthy_at: dict[str, float] = {}

    def healthy(self, service: PlannedService, seconds: float) -> None:
        self.healthy_at[service.name] = time.monotonic()
        super().healthy(service, seconds)


def service(name: str, waits_for: tuple[str, ...] = (), timeout: float = 60) -> PlannedService:
    spec = ServiceSpec(name=name, role=Role.MEGASERVICE, description=name, health=Health(),
                       default_port=1, waits_for=waits_for)
    return PlannedService(spec=spec, port=pick_free_port(), start_timeout=timeout)


def http_server(port: int, after: float = 0.0) -> list[str]:
    return [sys.executable, "-c", f"import time, http.server\ntime.sleep({after})\n"
            f"http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, "
            f"port={port}, bind='127.0.0.1')"]


def stack(*services: PlannedService) -> StackPlan:
    return StackPlan(profile="test", runtime="test", services=services,
                     model=LocalModel("m", Path("/m.gguf"), 1))


def test_independent_services_start_together_and_dependants_wait(tmp_path: Path) -> None:
    slow, quick = service("slow"), service("quick")
    last = service("last", waits_for=("slow", "quick"))
    runtime = RecordingRuntime({"slow": http_server(slow.port, after=1.5),
                                "quick": http_server(quick.port),
                                "last": http_server(last.port)}, tmp_path)
    progress = RecordingProgress()
    try:
        plan = stack(slow, quick, last)
        start_services(list(plan.services), plan, runtime, StopRequest(), progress)
    finally:
        runtime.stop_all()
    assert runtime.started["quick"] < progress.healthy_at["slow"]  # did not wait for slow
    assert runtime.started["last"] >= max(progress.healthy_at["slow"],
                                          progress.healthy_at["quick"])
    assert list(progress.healthy_at) == ["quick", "slow", "last"]


def test_the_first_failure_ends_the_other_waits(tmp_path: Path) -> None:
    crashing, hanging = service("crashing"), service("hanging", timeout=60)
    runtime = RecordingRuntime({"crashing": [sys.executable, "-c", "import time\n"
                                             "time.sleep(0.5); exit(4)"],
                                "hanging": [sys.executable, "-c", "import time\n"
                                            "time.sleep(600)"]}, tmp_path)
    started = time.monotonic()
    try:
        with pytest.raises(ServiceExitedError) as caught:
            plan = stack(crashing, hanging)
            start_services(list(plan.services), plan, runtime, StopRequest(), RecordingProgress())
    finally:
        runtime.stop_all()
    assert caught.value.service == "crashing"
    assert "exited with code 4" in caught.value.message
    # Had the crash not ended the other wait, the hanging service's own timeout would have
    # (and the pool waits for every wait before the error comes out). A crash at 0.5 s
    # leaves the machine plenty of time, loaded or not.
    assert time.monotonic() - started < hanging.start_timeout
