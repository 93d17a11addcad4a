"""What the private-files check costs a launch and `doctor`: walking opea-chat's folders.

    .venv/bin/python bench/private_files.py [--runs N]

Builds homes with 100, 1,000 and 10,000 files (logs, a model folder's shards, documents)
and prints the time (min, median, max) to find what is open (all private: the usual case)
and to find and close everything (all open: a home restored from a 0644 backup). Not a
test: machines are shared and noisy, so numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from launcher.paths import resolve_paths
from launcher.private_files import close_open_files, private_roots, too_open

SIZES = (100, 1_000, 10_000)
PER_FOLDER = 100


def build(home: Path, files: int, mode: int) -> None:
    for index in range(files):
        folder = home / ("data", "logs", "models", "state")[index % 4] / f"f{index // PER_FOLDER}"
        folder.mkdir(parents=True, exist_ok=True, mode=0o755 if mode & 0o044 else 0o700)
        path = folder / f"{index}.bin"
        path.touch()
        path.chmod(mode)
    for folder in home.rglob("*"):
        if folder.is_dir():
            folder.chmod(0o755 if mode & 0o044 else 0o700)


def timed(files: int, mode: int, close: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="opea-chat-bench-") as root:
        home = Path(root)
        build(home, files, mode)
        paths = resolve_paths({"OPEA_CHAT_HOME": str(home)})
        started = time.perf_counter()
        if close:
            close_open_files(paths)
        else:
            assert too_open(private_roots(paths)) == []
        seconds = time.perf_counter() - started
        assert too_open(private_roots(paths)) == []
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{'files':>7}  {'case':<28} {'min':>8} {'median':>8} {'max':>8}   (ms)")
    for files in SIZES:
        for case, mode, close in (("all private: find", 0o600, False),
                                  ("all open: find and close", 0o644, True)):
            times = [timed(files, mode, close) * 1000 for _ in range(args.runs)]
            print(f"{files:>7}  {case:<28} {min(times):8.1f} {statistics.median(times):8.1f} "
                  f"{max(times):8.1f}")


if __name__ == "__main__":
    os.umask(0o022)
    main()
