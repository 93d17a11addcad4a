"""Waiting for a service to become healthy.

The wait owns the timeout and fails fast: when the service's process ends while starting,
the error comes at once with the last lines of its log, not after the timeout.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable

import httpx

from launcher.errors import Interrupted, ServiceExitedError, StartTimeoutError
from launcher.plan import PlannedService
from launcher.ports import HOST
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
