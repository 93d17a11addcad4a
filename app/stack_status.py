"""What the app knows about the stack it talks to: the launcher's session file (runtime,
model, context size, each service's address) and the megaservice address the launcher
passes in its environment; and whether each service answers its health check now."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from launcher.local_runtime import MEGASERVICE_URL_VARIABLE
from launcher.paths import resolve_paths
from launcher.session_file import read_session
from launcher.settings import Settings
from opea.stack import LLAMA_CPP_PYTHON, PROFILES

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
    session: dict[str, Any] = read_session(path) or {}
    urls = {name: url for name, url in (session.get("urls") or {}).items()
            if isinstance(name, str) and isinstance(url, str)}
    model = session.get("model") or {}
    context = session.get("context_size")
    megaservice = env.get(MEGASERVICE_URL_VARIABLE) or urls.get("megaservice") \
        or DEFAULT_MEGASERVICE_URL
    urls["megaservice"] = megaservice  # the address this app was started to use
    return StackInfo(
        megaservice_url=megaservice,
        runtime=session.get("runtime"),
        model_name=model.get("name"),
        model_path=model.get("path"),
        context_size=context if isinstance(context, int) and context > 0
        else DEFAULT_CONTEXT_SIZE,
        urls=urls,
    )


def check_health(info: StackInfo, timeout: float = 2.0) -> list[Health]:
    """Each known service's health, in stack order."""
    results = []
    with httpx.Client(timeout=timeout, trust_env=False) as http:
        for spec in (LLAMA_CPP_PYTHON, *PROFILES["chat"].services):
            url = info.urls.get(spec.name)
            if url is None:
                continue
            try:
                response = http.get(url + spec.health.path)
                healthy = response.is_success
                detail = "healthy" if healthy else f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                healthy, detail = False, f"not answering ({type(exc).__name__})"
            results.append(Health(spec.name, url, healthy, detail))
    return results
