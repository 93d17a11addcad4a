"""One home, one stack: the launcher holds an exclusive lock on its home from before it
starts anything until everything it started has stopped.

A second launch in the same home (a double-click on the desktop shortcut starts two at the
same moment) does not get the lock, and opens the running session instead of starting a
second stack. The lock is an ``flock`` on a file in the state folder: the kernel releases
it when its holder exits, however it exits (kill -9 included), so it can never go stale.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def home_lock(path: Path) -> Iterator[bool]:
    """Yield True while this process holds the lock, False when another one does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
