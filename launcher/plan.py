"""Planning a launch: which services, on which ports, with which timeouts.

Pure: the port probes are passed in, so tests can plan against any state of the machine.
A port left at its default that is taken is replaced by a free one (and the plan says so);
a port the user set explicitly is never silently changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from launcher.errors import PortInUseError
from launcher.ports import HOST
from launcher.settings import Settings
from models.store import LocalModel
from opea.stack import PROFILES, ServiceSpec


@dataclass(frozen=True)
class PlannedService:
    spec: ServiceSpec
    port: int
    start_timeout: float

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def health_url(self) -> str:
        return self.url + self.spec.health_path


@dataclass(frozen=True)
class StackPlan:
    profile: str
    services: tuple[PlannedService, ...]
    model: LocalModel
    notes: tuple[str, ...] = ()

    def service(self, name: str) -> PlannedService:
        for planned in self.services:
            if planned.name == name:
                return planned
        raise KeyError(name)


def plan_stack(
    settings: Settings,
    model: LocalModel,
    is_free: Callable[[int], bool],
    pick_free: Callable[[], int],
    profile: str = "chat",
) -> StackPlan:
    planned: list[PlannedService] = []
    notes: list[str] = []
    taken: set[int] = set()
    for spec in PROFILES[profile]:
        wanted: int = getattr(settings, spec.port_setting)
        port = wanted
        if wanted in taken or not is_free(wanted):
            if not settings.is_default(spec.port_setting):
                flag = "--" + spec.port_setting.replace("_", "-")
                raise PortInUseError(
                    f"port {wanted} for the {spec.name} service is already in use "
                    f"({spec.port_setting}, from {settings.source_of(spec.port_setting)})",
                    hint=f"stop what uses it, or choose another port with {flag}",
                )
            port = pick_free()
            while port in taken:
                port = pick_free()
            notes.append(f"port {wanted} ({spec.name}) is in use; using {port} instead")
        taken.add(port)
        planned.append(PlannedService(spec=spec, port=port,
                                      start_timeout=getattr(settings, spec.timeout_setting)))
    return StackPlan(profile=profile, services=tuple(planned), model=model, notes=tuple(notes))
