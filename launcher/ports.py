"""Which ports on 127.0.0.1 are free. Everything opea-chat serves listens there only."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"


def is_port_free(port: int, host: str = HOST) -> bool:
    """True when a listener could bind the port now (binding, not connecting, is the test
    that matches what the service will do). SO_REUSEADDR, as the servers set it: the
    connections of a session stopped a moment ago linger in TIME_WAIT and must not make
    its ports look taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def pick_free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
