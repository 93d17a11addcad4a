"""Another process holding a lock on a history database, as a second app tab or a backup
tool would."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def holding_lock(db: Path, statements: list[str]) -> Iterator[None]:
    """A process that opens ``db``, runs ``statements`` and holds what they lock until the
    block ends (it is killed then, whatever happened inside)."""
    script = (
        "import sqlite3, time\n"
        f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
        f"for s in {statements!r}: c.execute(s)\n"
        "print('holding', flush=True)\n"
        "time.sleep(300)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        yield
    finally:
        holder.kill()
        holder.wait(10)
