"""What the running launcher tells other processes, as typed records: the session file,
the status report and the control channel's replies.

Each record is a frozen dataclass with ``to_json`` and one validating reader
(``from_json``) that raises ``RecordError`` naming the first field that is wrong. The
session file carries a schema version: a file without one (written by an older opea-chat)
or with another one is refused as such, and ``salvage`` still finds in it what `stop`
needs to clean up (PIDs with their start times).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from launcher.errors import RecordError

SCHEMA_VERSION = 1
T = TypeVar("T")


def _get(data: Mapping[str, Any], key: str, kind: type[T], where: str) -> T:
    value = data.get(key)
    # bool is an int to Python; a record's numbers are never booleans.
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        raise RecordError(f"{where}: {key!r} is missing or not a {kind.__name__}")
    return value


def _number(data: Mapping[str, Any], key: str, where: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{where}: {key!r} is missing or not a number")
    return float(value)


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise RecordError(f"{where} is not an object")
    return value


@dataclass(frozen=True)
class ProcessRecord:
    """A child process opea-chat started: ended by its group, if it is still the one."""

    name: str
    pid: int
    pgid: int
    create_time: float
    log: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "pid": self.pid, "pgid": self.pgid,
                "create_time": self.create_time, "log": self.log}


@dataclass(frozen=True)
class ContainerRecord:
    """A container opea-chat created (found again by its labels)."""

    name: str
    container: str
    id: str
    session: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "container": self.container, "id": self.id,
                "session": self.session}


ServiceRecord = ProcessRecord | ContainerRecord


def service_record(data: Any, where: str = "a service") -> ServiceRecord:
    entry = _object(data, where)
    name = _get(entry, "name", str, where)
    where = f"service {name!r}"
    if "pid" in entry:
        return ProcessRecord(name=name, pid=_get(entry, "pid", int, where),
                             pgid=_get(entry, "pgid", int, where),
                             create_time=_number(entry, "create_time", where),
                             log=_get(entry, "log", str, where))
    return ContainerRecord(name=name, container=_get(entry, "container", str, where),
                           id=_get(entry, "id", str, where),
                           session=_get(entry, "session", str, where))


@dataclass(frozen=True)
class ModelRecord:
    name: str
    path: str
    format: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "format": self.format}

    @classmethod
    def from_json(cls, data: Any) -> ModelRecord:
        entry = _object(data, "model")
        return cls(name=_get(entry, "name", str, "model"), path=_get(entry, "path", str, "model"),
                   format=_get(entry, "format", str, "model"))


@dataclass(frozen=True)
class ControlRecord:
    """Where the launcher's control channel listens and its token (the file is 0600)."""

    port: int
    token: str

    def to_json(self) -> dict[str, Any]:
        return {"port": self.port, "token": self.token}

    @classmethod
    def from_json(cls, data: Any) -> ControlRecord:
        entry = _object(data, "control")
        return cls(port=_get(entry, "port", int, "control"),
                   token=_get(entry, "token", str, "control"))


def _urls(data: Any) -> dict[str, str]:
    urls = _object(data, "urls")
    for name, url in urls.items():
        if not isinstance(url, str):
            raise RecordError(f"urls: {name!r} is not a string")
    return dict(urls)


@dataclass(frozen=True)
class SessionRecord:
    """The session file: the launcher, what it started, where it listens."""

    launcher_pid: int
    launcher_create_time: float
    runtime: str
    profile: str
    model: ModelRecord
    context_size: int
    started_at: float
    urls: Mapping[str, str]
    services: tuple[ServiceRecord, ...]
    control: ControlRecord | None = None
    schema: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "launcher_pid": self.launcher_pid,
            "launcher_create_time": self.launcher_create_time,
            "runtime": self.runtime,
            "profile": self.profile,
            "model": self.model.to_json(),
            "context_size": self.context_size,
            "started_at": self.started_at,
            "urls": dict(self.urls),
            "services": [service.to_json() for service in self.services],
            "control": self.control.to_json() if self.control is not None else None,
        }

    @classmethod
    def from_json(cls, data: Any) -> SessionRecord:
        record = _object(data, "the session")
        schema = record.get("schema")
        if schema is None:
            raise RecordError("it was written by an older opea-chat (no schema version)")
        if schema != SCHEMA_VERSION:
            raise RecordError(f"it has schema version {schema!r}; this opea-chat reads "
                              f"version {SCHEMA_VERSION}")
        services = record.get("services")
        if not isinstance(services, list):
            raise RecordError("the session: 'services' is missing or not a list")
        control = record.get("control")
        return cls(
            launcher_pid=_get(record, "launcher_pid", int, "the session"),
            launcher_create_time=_number(record, "launcher_create_time", "the session"),
            runtime=_get(record, "runtime", str, "the session"),
            profile=_get(record, "profile", str, "the session"),
            model=ModelRecord.from_json(record.get("model")),
            context_size=_get(record, "context_size", int, "the session"),
            started_at=_number(record, "started_at", "the session"),
            urls=_urls(record.get("urls")),
            services=tuple(service_record(entry) for entry in services),
            control=ControlRecord.from_json(control) if control is not None else None,
        )

    def salvage(self) -> Salvage:
        return Salvage(launcher_pid=self.launcher_pid,
                       launcher_create_time=self.launcher_create_time, runtime=self.runtime,
                       processes=tuple(s for s in self.services
                                       if isinstance(s, ProcessRecord)))


@dataclass(frozen=True)
class Salvage:
    """What `stop` can still use from a session file it cannot read as a whole: the
    launcher and the processes whose PID and start time are intact."""

    launcher_pid: int | None = None
    launcher_create_time: float | None = None
    runtime: str | None = None
    processes: tuple[ProcessRecord, ...] = ()


def salvage(data: Any) -> Salvage:
    if not isinstance(data, dict):
        return Salvage()
    processes = []
    for entry in data.get("services") or []:
        try:
            found = service_record(entry)
        except RecordError:
            continue
        if isinstance(found, ProcessRecord):
            processes.append(found)
    pid, started = data.get("launcher_pid"), data.get("launcher_create_time")
    runtime = data.get("runtime")
    return Salvage(
        launcher_pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        launcher_create_time=float(started) if isinstance(started, int | float)
        and not isinstance(started, bool) else None,
        runtime=runtime if isinstance(runtime, str) else None,
        processes=tuple(processes),
    )


# -- the status report and the control channel's replies ---------------------------------


@dataclass(frozen=True)
class ServiceHealth:
    name: str
    url: str
    healthy: bool
    pid: int | None = None
    container: str | None = None
    id: str | None = None  # the container's id

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"name": self.name, "url": self.url, "healthy": self.healthy}
        if self.pid is not None:
            found["pid"] = self.pid
        if self.container is not None:
            found["container"] = self.container
        if self.id is not None:
            found["id"] = self.id
        return found

    @classmethod
    def from_json(cls, data: Any) -> ServiceHealth:
        entry = _object(data, "a service")
        pid, container, found_id = entry.get("pid"), entry.get("container"), entry.get("id")
        return cls(name=_get(entry, "name", str, "a service"),
                   url=_get(entry, "url", str, "a service"),
                   healthy=_get(entry, "healthy", bool, "a service"),
                   pid=pid if isinstance(pid, int) else None,
                   container=container if isinstance(container, str) else None,
                   id=found_id if isinstance(found_id, str) else None)


@dataclass(frozen=True)
class StatusReport:
    """`opea-chat status`: what the running launcher reports (``running`` False: none
    runs, and ``left_behind`` names what a killed one recorded)."""

    running: bool
    launcher_pid: int | None = None
    runtime: str | None = None
    profile: str | None = None
    model: ModelRecord | None = None
    context_size: int | None = None
    started_at: float | None = None
    uptime_s: float = 0.0
    device: str | None = None
    urls: Mapping[str, str] = field(default_factory=dict)
    services: tuple[ServiceHealth, ...] = ()
    left_behind: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        if not self.running:
            found: dict[str, Any] = {"running": False}
            if self.left_behind:
                found["left_behind"] = list(self.left_behind)
            return found
        return {
            "running": True,
            "launcher_pid": self.launcher_pid,
            "runtime": self.runtime,
            "profile": self.profile,
            "model": self.model.to_json() if self.model is not None else None,
            "context_size": self.context_size,
            "started_at": self.started_at,
            "uptime_s": self.uptime_s,
            "device": self.device,
            "urls": dict(self.urls),
            "services": [service.to_json() for service in self.services],
        }

    @classmethod
    def from_json(cls, data: Any) -> StatusReport:
        report = _object(data, "the status")
        if not _get(report, "running", bool, "the status"):
            left = report.get("left_behind") or []
            return cls(running=False, left_behind=tuple(str(name) for name in left))
        model = report.get("model")
        return cls(
            running=True,
            launcher_pid=_get(report, "launcher_pid", int, "the status"),
            runtime=_get(report, "runtime", str, "the status"),
            profile=_get(report, "profile", str, "the status"),
            model=ModelRecord.from_json(model) if model is not None else None,
            context_size=_get(report, "context_size", int, "the status"),
            started_at=_number(report, "started_at", "the status"),
            uptime_s=_number(report, "uptime_s", "the status"),
            device=_get(report, "device", str, "the status"),
            urls=_urls(report.get("urls")),
            services=tuple(ServiceHealth.from_json(s) for s in report.get("services") or []),
        )


@dataclass(frozen=True)
class ModelSwitch:
    """The control channel's answer to a model switch."""

    model: str
    changed: bool

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "changed": self.changed}

    @classmethod
    def from_json(cls, data: Any) -> ModelSwitch:
        reply = _object(data, "the model switch reply")
        return cls(model=_get(reply, "model", str, "the model switch reply"),
                   changed=_get(reply, "changed", bool, "the model switch reply"))


@dataclass(frozen=True)
class Stopping:
    """The control channel's answer to a shutdown request."""

    after_s: float

    def to_json(self) -> dict[str, Any]:
        return {"stopping": True, "after_s": self.after_s}

    @classmethod
    def from_json(cls, data: Any) -> Stopping:
        reply = _object(data, "the shutdown reply")
        return cls(after_s=_number(reply, "after_s", "the shutdown reply"))
