"""Wall time of CLI commands as a user runs them: a cold Python process each time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bench.launches import summary

# The installed command, as a user types it (its own interpreter start included).
COMMAND = Path(sys.executable).parent / "opea-chat"


def cold(home: Path, args: list[str], runs: int = 7) -> dict[str, float]:
    times = []
    env = {**os.environ, "OPEA_CHAT_HOME": str(home)}
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([str(COMMAND), *args], capture_output=True, env=env, check=False,
                       timeout=120)
        times.append(time.perf_counter() - started)
    return summary(times)
