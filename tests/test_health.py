"""Waiting for health against real processes: fail fast on exit, time out with the log,
stop on request. The runtime here runs plain commands through the same process code the
local runtime uses."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from launcher.errors import (
    Interrupted,
    ServiceExitedError,
    ServiceStartError,
    StartTimeoutError,
)
from launcher.health import wait_healthy
from launcher.plan import PlannedService
from launcher.ports import is_port_free, pick_free_port
from launcher.processes import log_tail
from opea.stack import Health, Role, ServiceSpec
from tests.command_runtime import CommandRuntime


def planned(name: str, timeout: float, port: int | None = None) -> PlannedService:
    spec = ServiceSpec(name=name, role=Role.MEGASERVICE, description=name, health=Health(),
                       default_port=1, timeout_setting="megaservice_start_timeout")
    return PlannedService(spec=spec, port=port or pick_free_port(), start_timeout=timeout)


@pytest.fixture
def runtime(tmp_path: Path) -> Any:
    runtimes: list[CommandRuntime] = []

    def make(commands: dict[str, list[str]]) -> CommandRuntime:
        runtimes.append(CommandRuntime(commands, tmp_path))
        return runtimes[-1]

    yield make
    for made in runtimes:
        made.stop_all()


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_service_that_exits_while_starting_fails_at_once_with_its_log(runtime: Any) -> None:
    service = planned("megaservice", timeout=600)
    crashing = runtime({"megaservice": py("print('binding port: address in use'); exit(3)")})
    crashing.start(service)
    with pytest.raises(ServiceExitedError) as caught:
        wait_healthy(service, crashing, stop_requested=lambda: False)
    assert caught.value.message == "the megaservice service exited with code 3 while starting"
    assert "binding port: address in use" in (caught.value.details or "")
    assert "megaservice.log" in (caught.value.hint or "")


def test_a_service_that_never_answers_times_out_with_its_log(runtime: Any) -> None:
    service = planned("megaservice", timeout=0.5)
    silent = runtime({"megaservice": py("print('still loading', flush=True)\n"
                                        "import time; time.sleep(60)")})
    silent.start(service)
    with pytest.raises(StartTimeoutError) as caught:
        wait_healthy(service, silent, stop_requested=lambda: False)
    assert "was not healthy at http://127.0.0.1:" in caught.value.message
    assert "after 0.5 s" in caught.value.message
    assert "megaservice_start_timeout" in (caught.value.hint or "")
    assert "still loading" in (caught.value.details or "")


def test_a_healthy_service_is_seen_and_timed(runtime: Any) -> None:
    # The server sleeps a second before it listens: the wait cannot see it healthy sooner,
    # and reports its progress (the seconds waited so far) until it does.
    service = planned("megaservice", timeout=120)
    server = runtime({"megaservice": py(
        "import http.server, time\n"
        "time.sleep(1)\n"
        f"http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, "
        f"port={service.port}, bind='127.0.0.1')")})
    server.start(service)
    ticks: list[float] = []
    seconds = wait_healthy(service, server, stop_requested=lambda: False, on_tick=ticks.append)
    assert 1 <= seconds < 120
    assert ticks, "no progress was reported while the service was starting"
    assert ticks[0] >= 0 and ticks[-1] <= seconds  # none before the start or after health


def test_a_stop_request_ends_the_wait(runtime: Any) -> None:
    service = planned("megaservice", timeout=600)
    sleeper = runtime({"megaservice": py("import time; time.sleep(60)")})
    sleeper.start(service)
    with pytest.raises(Interrupted, match="while waiting for the megaservice"):
        wait_healthy(service, sleeper, stop_requested=lambda: True)


def test_stop_ends_the_whole_process_group_including_grandchildren(runtime: Any) -> None:
    spawner = runtime({"svc": py(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)")})
    spawner.start(planned("svc", 5))
    child = spawner.children["svc"]
    for _ in range(100):
        if log_tail(child.log_path, 1).strip().isdigit():
            break
        time.sleep(0.05)
    grandchild = int(log_tail(child.log_path, 1))
    assert psutil.pid_exists(grandchild)
    spawner.stop_all()
    assert child.exit_code() is not None
    assert not psutil.pid_exists(grandchild) or \
        psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


def test_someone_elses_server_on_the_port_is_never_taken_for_the_service(
        runtime: Any, tmp_path: Path) -> None:
    """Issue 13 item 4: another program (another home's stack, say) answers the health URL
    on the service's port while the process opea-chat started does not listen there."""
    service = planned("megaservice", timeout=30)
    foreign = subprocess.Popen([sys.executable, "-m", "http.server", str(service.port),
                                "--bind", "127.0.0.1"], cwd=tmp_path, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while is_port_free(service.port):
            assert time.monotonic() < deadline and foreign.poll() is None
            time.sleep(0.05)
        ours = runtime({"megaservice": py("print('loading', flush=True)\n"
                                          "import time; time.sleep(60)")})
        ours.start(service)
        name = psutil.Process(foreign.pid).name()
        with pytest.raises(ServiceStartError) as caught:
            wait_healthy(service, ours, stop_requested=lambda: False)
    finally:
        foreign.terminate()
        foreign.wait(10)
    assert caught.value.message == (
        f"port {service.port} for the megaservice service is already in use by another "
        f"program (PID {foreign.pid}, {name}), not by the megaservice "
        "service opea-chat started")
    assert caught.value.hint == "stop what uses it"
    assert "loading" in (caught.value.details or "")
