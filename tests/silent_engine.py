"""A Docker socket whose engine accepts connections and never answers (a hung daemon), to
show which commands wait on Docker and which never touch it."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SilentEngine:
    socket_path: Path
    connections: int = 0
    _held: list[socket.socket] = field(default_factory=list)

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_path}"


@contextlib.contextmanager
def silent_engine(socket_path: Path) -> Iterator[SilentEngine]:
    engine = SilentEngine(socket_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path))
    listener.listen(16)
    listener.settimeout(0.1)
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            engine.connections += 1
            engine._held.append(connection)  # held open, never answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield engine
    finally:
        done.set()
        thread.join(5)
        for connection in engine._held:
            connection.close()
        listener.close()
        socket_path.unlink(missing_ok=True)
