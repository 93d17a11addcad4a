"""What the app knows about the stack it talks to: the launcher's session file (runtime,
model, context size, each service's address, the control channel) and the megaservice
address the launcher passes in its environment; and, live, each service's health and the
device, as the running launcher reports them (it is the one that knows)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from launcher.control import ControlClient
from launcher.errors import ControlError, SessionFileError
from launcher.paths import resolve_paths
from launcher.session_file import read_session
from launcher.settings import Settings
from opea.stack import CHAT_MEGASERVICE, MEGASERVICE_URL_VARIABLE

DEFAULT_MEGASERVICE_URL = "http://127.0.0.1:8888"
DEFAULT_CONTEXT_SIZE = Settings().context_size


@dataclass(frozen=True)
class StackInfo:
    megaservice_url: str
    runtime: str | None = None
    model_name: str | None = None
    model_path: str | None = None
    context_size: int = DEFAULT_CONTEXT_SIZE
    urls: dict[str, str] = field(default_factory=dict)
    # (port, token) of the running launcher's control channel, if there is one.
    control: tuple[int, str] | None = None

    def control_client(self, timeout: float = 5.0) -> ControlClient | None:
        if self.control is None:
            return None
        return ControlClient(*self.control, timeout=timeout)


@dataclass(frozen=True)
class Health:
    service: str
    url: str
    healthy: bool
    detail: str


def stack_info(environ: Mapping[str, str] | None = None,
               session_file: Path | None = None) -> StackInfo:
    env = os.environ if environ is None else environ
    path = session_file or resolve_paths(dict(env)).session_file
    try:
        session = read_session(path)
    except SessionFileError:
        session = None  # as without a launcher: the defaults and the megaservice address
    urls = dict(session.urls) if session is not None else {}
    megaservice = env.get(MEGASERVICE_URL_VARIABLE) or urls.get("megaservice") \
        or DEFAULT_MEGASERVICE_URL
    urls["megaservice"] = megaservice  # the address this app was started to use
    if session is None:
        return StackInfo(megaservice_url=megaservice, urls=urls)
    control = session.control
    return StackInfo(
        megaservice_url=megaservice,
        runtime=session.runtime,
        model_name=session.model.name,
        model_path=session.model.path,
        context_size=session.context_size if session.context_size > 0
        else DEFAULT_CONTEXT_SIZE,
        urls=urls,
        control=(control.port, control.token) if control is not None else None,
    )


@dataclass(frozen=True)
class LiveStatus:
    device: str
    services: list[Health]


def live_status(info: StackInfo, timeout: float = 2.0) -> LiveStatus:
    """Each service's health and the device, from the running launcher; without one (the
    app started on its own), the health of the megaservice this app talks to."""
    client = info.control_client(timeout)
    if client is not None:
        try:
            status = client.status()
        except ControlError:
            pass
        else:
            return LiveStatus(
                device=status.device or "unknown",
                services=[Health(s.name, s.url, s.healthy,
                                 "healthy" if s.healthy else "not healthy")
                          for s in status.services])
        finally:
            client.close()
    url = info.megaservice_url
    try:
        response = httpx.get(url + CHAT_MEGASERVICE.health.path, timeout=timeout, trust_env=False)
        health = Health("megaservice", url, response.is_success,
                        "healthy" if response.is_success else f"HTTP {response.status_code}")
    except httpx.TransportError as exc:
        health = Health("megaservice", url, False, f"not answering ({type(exc).__name__})")
    return LiveStatus(device="unknown (no running launcher)", services=[health])
