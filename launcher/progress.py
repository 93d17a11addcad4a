"""What a launch prints while it works.

On a terminal, a live line shows which service is being waited for and for how long; when
output goes to a file or pipe (desktop launch, tests), each step is one plain line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape

from launcher.plan import PlannedService


class Progress:
    def __init__(self, console: Console | None = None):
        self.console = console or Console(soft_wrap=True, highlight=False)

    def note(self, text: str) -> None:
        self.console.print(escape(text))

    @contextmanager
    def waiting(self, service: PlannedService) -> Iterator[Callable[[float], None]]:
        limit = f"{service.start_timeout:g} s"
        if not self.console.is_terminal:
            self.note(f"waiting for {service.name} (up to {limit}) ...")
            yield lambda elapsed: None
            return
        with self.console.status(f"waiting for {service.name} ...") as status:
            def tick(elapsed: float) -> None:
                status.update(f"waiting for {service.name}: {elapsed:.1f} s of {limit}")

            yield tick

    def healthy(self, service: PlannedService, seconds: float) -> None:
        self.note(f"{service.name:<12} {service.url:<24} healthy in {seconds:.1f} s")

    def ready(self, url: str) -> None:
        # Scripts and tests look for this exact line.
        self.note(f"Ready: {url}")
