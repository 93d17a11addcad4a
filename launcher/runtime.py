"""The interface every runtime (local processes, docker containers) implements.

The launch sequence in ``launcher.launch`` talks only to this: start a planned service,
ask whether it is still running, read its log, and stop everything it started. Both runtimes
are ``launcher.runner.Runners``: each service goes to the runner of its placement.
"""

from __future__ import annotations

from typing import Protocol

from launcher.plan import PlannedService, StackPlan
from launcher.progress import Progress
from launcher.records import ServiceRecord


class Runtime(Protocol):
    name: str

    def prepare(self, plan: StackPlan, progress: Progress) -> None:
        """Everything before the first start that can fail: images, GPU requests."""

    def start(self, service: PlannedService, plan: StackPlan) -> None:
        """Start one service; return at once (readiness is waited for separately)."""

    def exit_status(self, service: str) -> str | None:
        """None while the service runs, else how it ended ("exited with code 1")."""

    def log_tail(self, service: str, lines: int = 50) -> str: ...

    def log_location(self, service: str) -> str: ...

    def device(self) -> str:
        """Where the model runs, in words ("CPU, 16 threads", "NVIDIA H200, 141 GB")."""

    def records(self) -> list[ServiceRecord]:
        """What was started, for the session file (PIDs or container ids)."""

    def elsewhere(self) -> dict[str, str]:
        """Services the stack uses that this runtime does not run (the remote runtime's
        endpoint), by name: their URLs."""

    def elsewhere_healthy(self, service: str) -> bool:
        """Whether one of those answers its health check now."""

    def stop_service(self, service: str) -> None:
        """Stop and forget one service (to start it again with another model, say)."""

    def stop_all(self) -> None:
        """Stop everything this runtime started, newest first. Safe to call twice. Tries
        everything, then raises CleanupError naming what could not be removed."""
