"""What a launch prints while it works.

On a terminal, one live line shows which services are being waited for and for how long;
when output goes to a file or pipe (desktop launch, tests), each step is one plain line.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from launcher.plan import PlannedService


class Progress:
    def __init__(self, console: Console | None = None):
        self.console = console or Console(soft_wrap=True, highlight=False)
        self._waiting: dict[str, tuple[PlannedService, float]] = {}
        self._status: Status | None = None

    @property
    def interactive(self) -> bool:
        return self.console.is_terminal

    def note(self, text: str) -> None:
        self.console.print(escape(text))

    def waiting(self, service: PlannedService) -> None:
        self._waiting[service.name] = (service, time.monotonic())
        if not self.interactive:
            self.note(f"waiting for {service.name} (up to {service.start_timeout:g} s) ...")
        elif self._status is None:
            self._status = self.console.status("")
            self._status.start()
        self.tick()

    def tick(self) -> None:
        """Refresh the live line (call it a few times a second while waiting)."""
        if self._status is None:
            return
        now = time.monotonic()
        parts = [f"{name} {now - started:.1f} s of {service.start_timeout:g} s"
                 for name, (service, started) in self._waiting.items()]
        self._status.update("waiting for " + ", ".join(parts))

    def healthy(self, service: PlannedService, seconds: float) -> None:
        self._waiting.pop(service.name, None)
        self.note(f"{service.name:<12} {service.url:<24} healthy in {seconds:.1f} s")
        if not self._waiting:
            self.stop_waiting()

    def stop_waiting(self) -> None:
        self._waiting.clear()
        if self._status is not None:
            self._status.stop()
            self._status = None

    def ready(self, url: str) -> None:
        # Scripts and tests look for this exact line.
        self.note(f"Ready: {url}")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop_waiting()
