"""Waiting for a service to become healthy.

The wait owns the timeout and fails fast: when the service's process ends while starting,
the error comes at once with the last lines of its log, not after the timeout. An answer
counts only when it comes from the process opea-chat started: another program on the same
port (another home's stack, say) is named, never taken for the service.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import psutil

from launcher.errors import Interrupted, ServiceExitedError, ServiceStartError, StartTimeoutError
from launcher.plan import PlannedService
from launcher.ports import HOST
from launcher.records import ProcessRecord
from launcher.runtime import Runtime
from opea.stack import HealthKind

# A service is seen healthy at most one interval plus one probe after it is: 0.1 s gave
# lags up to 97 ms in the bench, against a 100 ms target. A probe of a local port that is
# not open yet is refused at once, so polling faster costs next to nothing.
POLL_INTERVAL = 0.05
LOG_LINES = 50


def redis_ping(port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def probe(http: httpx.Client, service: PlannedService) -> bool:
    """One health check, by the kind the stack data names."""
    if service.spec.health.kind is HealthKind.REDIS:
        return redis_ping(service.port)
    try:
        return http.get(service.health_url).is_success
    except httpx.TransportError:
        return False


def probe_each(services: Iterable[PlannedService]) -> dict[str, bool]:
    """One health check of each service, over one client (a status request checks all)."""
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        return {service.name: probe(http, service) for service in services}


def _who(pid: int | None) -> str:
    if pid is None:
        return "a process of another user"
    try:
        return f"PID {pid}, {psutil.Process(pid).name()}"
    except psutil.Error:
        return f"PID {pid}"


def _listens(connections: Iterable[Any], port: int) -> list[Any]:
    """The listening sockets on ``port`` among psutil's connections."""
    return [c for c in connections
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]


def _ours_listen(record: ProcessRecord, port: int) -> bool:
    """Does the child (or else one of its descendants) listen on ``port``? Asked of those
    processes only: a scan of the whole machine's sockets costs 250 ms on a loaded one."""
    try:
        child = psutil.Process(record.pid)
        if _listens(child.net_connections(kind="tcp"), port):
            return True
        descendants = child.children(recursive=True)
    except psutil.Error:
        return False
    for process in descendants:
        try:
            if _listens(process.net_connections(kind="tcp"), port):
                return True
        except psutil.Error:
            continue
    return False


def foreign_listener(service: PlannedService, runtime: Runtime) -> str | None:
    """Who listens on the service's port instead of the process opea-chat started for it;
    None when it is ours, or when that cannot be told (a container: its port is published
    by Docker; a system that hides sockets)."""
    ours = next((record for record in runtime.records()
                 if isinstance(record, ProcessRecord) and record.name == service.name), None)
    if ours is None or _ours_listen(ours, service.port):
        return None
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    others = []
    for connection in _listens(connections, service.port):
        pid = connection.pid
        try:
            if pid is not None and os.getpgid(pid) == ours.pgid:
                return None
        except OSError:  # ended meanwhile
            continue
        others.append(_who(pid))
    return ", ".join(others) or None


def refuse_foreign(service: PlannedService, runtime: Runtime) -> None:
    """Fail when the health answer came from someone else's server on the port."""
    intruder = foreign_listener(service, runtime)
    if intruder is None:
        return
    setting = service.spec.port_setting
    raise ServiceStartError(
        service.name,
        f"port {service.port} for the {service.name} service is already in use by another "
        f"program ({intruder}), not by the {service.name} service opea-chat started",
        hint="stop what uses it" + (f", or choose another port with --"
                                    f"{setting.replace('_', '-')}" if setting else ""),
        details=runtime.log_tail(service.name, LOG_LINES))


def wait_healthy(
    service: PlannedService,
    runtime: Runtime,
    stop_requested: Callable[[], bool],
    on_tick: Callable[[float], None] = lambda elapsed: None,
) -> float:
    """Block until ``service`` answers its health URL; return the seconds it took."""
    start = time.monotonic()
    deadline = start + service.start_timeout
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        while True:
            if stop_requested():
                raise Interrupted(f"stopped while waiting for the {service.name} service")
            status = runtime.exit_status(service.name)
            if status is not None:
                raise ServiceExitedError(
                    service.name,
                    f"the {service.name} service {status} while starting",
                    hint=f"see {runtime.log_location(service.name)}",
                    details=runtime.log_tail(service.name, LOG_LINES),
                )
            if probe(http, service):
                refuse_foreign(service, runtime)
                return time.monotonic() - start
            now = time.monotonic()
            if now >= deadline:
                raise StartTimeoutError(
                    service.name,
                    f"the {service.name} service was not healthy at {service.health_url} "
                    f"after {service.start_timeout:g} s",
                    hint=(f"raise {service.spec.timeout_setting}, or see "
                          if service.spec.timeout_setting else "see ")
                    + runtime.log_location(service.name),
                    details=runtime.log_tail(service.name, LOG_LINES),
                )
            on_tick(now - start)
            time.sleep(POLL_INTERVAL)
