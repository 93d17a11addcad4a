"""Turning Ctrl+C, SIGTERM and SIGHUP into a request to stop.

Handlers only set a flag; the launch loop checks it between steps, so a signal can never
cut a step (starting a child, writing the session file) in half and leave something
unrecorded behind.

Closing the terminal hangs it up: the kernel sends SIGHUP, and from then on every write to
it fails (EIO). The launcher's output then goes to /dev/null, so that the stop which follows
is not cut short by its first line of progress, and the exit status stays 0.
"""

from __future__ import annotations

import errno
import os
import signal
import termios
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


def drop_output_to_a_hung_up_terminal() -> list[int]:
    """Point stdout and stderr at /dev/null where they are a terminal that was hung up
    (a pipe, a file or a live terminal keeps them); return the descriptors redirected."""
    dropped = []
    for descriptor in (1, 2):
        try:
            termios.tcgetattr(descriptor)
        except termios.error as error:
            if error.args[0] != errno.EIO:  # ENOTTY: not a terminal at all
                continue
        except OSError:  # closed
            continue
        else:
            continue  # a live terminal
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, descriptor)
        finally:
            os.close(null)
        dropped.append(descriptor)
    return dropped


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    request = StopRequest()

    def handler(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            drop_output_to_a_hung_up_terminal()
        request.set(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
