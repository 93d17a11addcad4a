"""How long `opea-chat doctor` takes as a user meets it: a cold process each time.

    .venv/bin/python bench/doctor.py [--runs N] [--model FILE.gguf]

Prints the wall time (min, median, max) of `opea-chat doctor --json` with the Docker engine
as it is, with no engine (DOCKER_HOST pointing at a socket that does not exist), and with
`--runtime docker` (images and registry look-ups). Each run gets a fresh OPEA_CHAT_HOME, with
``--model`` linked into its models folder when given. Not a test: machines are shared and
noisy, so numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCENARIOS: dict[str, tuple[list[str], dict[str, str]]] = {
    "docker as it is": ([], {}),
    "no Docker engine": ([], {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}),
    "--runtime docker": (["--runtime", "docker"], {}),
}


def run_once(extra: list[str], env: dict[str, str], model: Path | None) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="opea-chat-bench-") as home:
        if model is not None:
            (Path(home) / "models").mkdir(mode=0o700)  # private, as opea-chat makes it
            (Path(home) / "models" / model.name).symlink_to(model.resolve())
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "launcher", "doctor", "--json", *extra],
            capture_output=True, text=True, check=False, timeout=60,
            env={**os.environ, "OPEA_CHAT_HOME": home, **env})
        seconds = time.monotonic() - started
    json.loads(done.stdout)  # it must still be a complete answer
    return seconds, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", type=Path, help="a .gguf file to put in the models folder")
    args = parser.parse_args()
    for name, (extra, env) in SCENARIOS.items():
        results = [run_once(extra, env, args.model) for _ in range(args.runs)]
        times = sorted(seconds for seconds, _ in results)
        codes = sorted({code for _, code in results})
        print(f"{name:<18} min {times[0]:.2f} s  median {statistics.median(times):.2f} s  "
              f"max {times[-1]:.2f} s  (exit {codes}, {args.runs} runs)")


if __name__ == "__main__":
    main()
