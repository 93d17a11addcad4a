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


class IdleWatch:
    """Says when the app has had no tab open for ``minutes`` (0: never)."""

    def __init__(self, port: int, minutes: float):
        self.port = port
        self.limit = minutes * 60
        self._idle_since: float | None = None

    def expired(self, now: float | None = None) -> bool:
        if self.limit <= 0:
            return False
        now = time.monotonic() if now is None else now
        if open_connections(self.port):
            self._idle_since = None
            return False
        if self._idle_since is None:
            self._idle_since = now
        return now - self._idle_since >= self.limit
