"""A runtime that runs plain commands, with the local runtime's process code: for testing
the launch machinery (health waits, start order) with real processes."""

from __future__ import annotations

from pathlib import Path

from launcher.plan import PlannedService, StackPlan
from launcher.processes import ChildProcess, describe_exit, log_tail, start_child, stop_child
from launcher.progress import Progress
from launcher.records import ServiceRecord


class CommandRuntime:
    """Runs one command per service name, with the local runtime's process handling."""

    name = "test"

    def __init__(self, commands: dict[str, list[str]], log_dir: Path):
        self.commands = commands
        self.log_dir = log_dir
        self.children: dict[str, ChildProcess] = {}

    def prepare(self, plan: StackPlan, progress: Progress) -> None:
        pass

    def start(self, service: PlannedService, plan: StackPlan | None = None) -> None:
        self.children[service.name] = start_child(
            service.name, self.commands[service.name], self.log_dir / f"{service.name}.log",
            {"PATH": "/usr/bin:/bin"})

    def exit_status(self, service: str) -> str | None:
        code = self.children[service].exit_code()
        return None if code is None else describe_exit(code)

    def log_tail(self, service: str, lines: int = 50) -> str:
        return log_tail(self.children[service].log_path, lines)

    def device(self) -> str:
        return "CPU"

    def stop_service(self, service: str) -> None:
        stop_child(self.children.pop(service))

    def log_location(self, service: str) -> str:
        return str(self.children[service].log_path)

    def records(self) -> list[ServiceRecord]:
        return [child.record() for child in self.children.values()]

    def stop_all(self) -> None:
        for child in reversed(list(self.children.values())):
            stop_child(child)
