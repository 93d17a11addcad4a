"""Turning Ctrl+C, SIGTERM and SIGHUP into a request to stop.

Handlers only set a flag; the launch loop checks it between steps, so a signal can never
cut a step (starting a child, writing the session file) in half and leave something
unrecorded behind.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopRequest:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None

    def __call__(self) -> bool:
        return self._event.is_set()

    def set(self, reason: str) -> None:
        """``reason``: the signal's name, or what else asked to stop."""
        self.signal_name = self.signal_name or reason
        self._event.set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    request = StopRequest()

    def handler(signum: int, frame: FrameType | None) -> None:
        request.set(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
