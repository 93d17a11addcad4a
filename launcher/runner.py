"""One runner per placement: what starts, watches and stops the services of one placement
(processes, containers). A runtime hands each planned service to the runner of its
placement, so a new placement (a remote machine, Kubernetes) is one more runner, not one
more branch in every method of every runtime."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from launcher.errors import CleanupError
from launcher.plan import Placement, PlannedService, StackPlan
from launcher.records import ServiceRecord


class Runner(Protocol):
    def start(self, service: PlannedService, plan: StackPlan) -> None:
        """Start one service; return at once (readiness is waited for separately)."""

    def exit_status(self, service: str) -> str | None:
        """None while the service runs, else how it ended ("exited with code 1")."""

    def log_tail(self, service: str, lines: int = 50) -> str: ...

    def log_location(self, service: str) -> str: ...

    def records(self) -> list[ServiceRecord]:
        """What this runner started, for the session file."""

    def stop_service(self, service: str) -> None:
        """Stop and forget one service; nothing if it was not started."""

    def stop_all(self) -> None:
        """Stop everything this runner started; raise CleanupError for what is left."""


class Runners:
    """The runners of one runtime, by placement; each call goes to the runner that started
    the service. Records are listed in the order of ``runners``, and stopping everything
    goes the other way (the last placement's services first)."""

    def __init__(self, runners: Mapping[Placement, Runner]):
        self._runners = dict(runners)
        self._of: dict[str, Runner] = {}

    def runner(self, placement: Placement) -> Runner:
        return self._runners[placement]

    def _started(self, service: str) -> Runner:
        # A service never started (or stopped since) is unknown, as to its runner.
        return self._of[service]

    def start(self, service: PlannedService, plan: StackPlan) -> None:
        runner = self._runners[service.placement]
        # Known before it starts: a start that fails half-way must still be stopped.
        self._of[service.name] = runner
        runner.start(service, plan)

    def exit_status(self, service: str) -> str | None:
        return self._started(service).exit_status(service)

    def log_tail(self, service: str, lines: int = 50) -> str:
        return self._started(service).log_tail(service, lines)

    def log_location(self, service: str) -> str:
        return self._started(service).log_location(service)

    def records(self) -> list[ServiceRecord]:
        return [record for runner in self._runners.values() for record in runner.records()]

    def stop_service(self, service: str) -> None:
        runner = self._of.pop(service, None)
        if runner is not None:
            runner.stop_service(service)

    def stop_all(self) -> None:
        """Every runner tries everything; then one CleanupError names all that is left."""
        problems: list[CleanupError] = []
        for runner in reversed(list(self._runners.values())):
            try:
                runner.stop_all()
            except CleanupError as problem:
                problems.append(problem)
        self._of.clear()
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise CleanupError("; ".join(p.message for p in problems), hint=problems[0].hint)
