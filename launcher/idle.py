"""Is anyone looking? A browser tab on the app keeps a websocket to it open, so the app's
port having no established connection means no tab is open."""

from __future__ import annotations

import time

import psutil


def open_connections(port: int) -> int:
    """Established TCP connections to ``port`` on this machine (any process's)."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return 1  # cannot tell: never shut down on a guess
    return sum(1 for c in connections
               if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port)


# net_connections reads every process's open sockets from /proc: too much to do at the
# launcher's 4 checks a second for a limit counted in minutes.
LOOK_EVERY = 2.0


class IdleWatch:
    """Says when the app has had no tab open for ``minutes`` (0: never)."""

    def __init__(self, port: int, minutes: float):
        self.port = port
        self.limit = minutes * 60
        self._idle_since: float | None = None
        self._next_look = 0.0

    def expired(self, now: float | None = None) -> bool:
        if self.limit <= 0:
            return False
        now = time.monotonic() if now is None else now
        if now >= self._next_look:
            self._next_look = now + LOOK_EVERY
            if open_connections(self.port):
                self._idle_since = None
            elif self._idle_since is None:
                self._idle_since = now
        return self._idle_since is not None and now - self._idle_since >= self.limit
