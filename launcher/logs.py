"""`opea-chat logs [SERVICE] [-f] [-n N]`: the services' logs, from wherever they are.

Local services (and the app, and the launcher itself when it runs in the background) write
to files in the log folder. Containers log to Docker while they run; the docker runtime
copies each container's log into the log folder when it removes the container, so the
logs of a stopped session stay readable.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from launcher.errors import ConfigError, SessionFileError
from launcher.paths import Paths
from launcher.records import ContainerRecord
from launcher.session_file import read_session
from launcher.stop import running_launcher

Lines = Callable[[int, bool], Iterator[str]]


def _file_lines(path: Path) -> Lines:
    def lines(last: int, follow: bool) -> Iterator[str]:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            yield from (line.rstrip("\n") for line in deque(handle, maxlen=last))
            while follow:
                line = handle.readline()
                if line:
                    yield line.rstrip("\n")
                else:
                    time.sleep(0.2)

    return lines


def _container_lines(name: str) -> Lines:
    def lines(last: int, follow: bool) -> Iterator[str]:
        from launcher.docker_engine import connect

        client = connect(timeout=5)
        try:
            container = client.containers.get(name)
            if not follow:
                yield from container.logs(tail=last).decode("utf-8", "replace").splitlines()
                return
            buffer = b""
            for chunk in container.logs(stream=True, follow=True, tail=last):
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                yield from (line.decode("utf-8", "replace") for line in complete)
        finally:
            client.close()

    return lines


def log_sources(paths: Paths) -> dict[str, Lines]:
    """Every service with a log: running containers first, then the log files."""
    sources: dict[str, Lines] = {}
    try:
        record = read_session(paths.session_file)
    except SessionFileError:
        record = None  # the log files are there all the same
    if record and record.runtime == "docker" and running_launcher(record):
        for entry in record.services:
            if isinstance(entry, ContainerRecord):
                sources[entry.name] = _container_lines(entry.container)
    if paths.log_dir.is_dir():
        for path in sorted(paths.log_dir.glob("*.log")):
            sources.setdefault(path.stem, _file_lines(path))
    return sources


def show_logs(paths: Paths, service: str | None, follow: bool, last: int,
              out: Any = sys.stdout) -> int:
    sources = log_sources(paths)
    if not sources:
        print(f"No logs yet in {paths.log_dir}.", file=out)
        return 0
    if service is not None:
        if service not in sources:
            raise ConfigError(f"no log for a service named {service!r}",
                              hint=f"services with logs: {', '.join(sources)}")
        sources = {service: sources[service]}
    width = max(map(len, sources))
    lock = threading.Lock()

    def pump(name: str, lines: Lines) -> None:
        prefix = f"{name:<{width}} | " if len(sources) > 1 else ""
        for line in lines(last, follow):
            with lock:
                print(prefix + line, file=out, flush=True)

    if not follow:
        for name, lines in sources.items():
            pump(name, lines)
        return 0
    for name, lines in sources.items():
        threading.Thread(target=pump, args=(name, lines), daemon=True).start()
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:  # the way to end a follow
        return 0
