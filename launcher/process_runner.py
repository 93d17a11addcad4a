"""The runner of the PROCESS placement: a service as a child process of the launcher,
listening on 127.0.0.1, its output in the log folder. Both runtimes use it (the docker
runtime for the app)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

from launcher.errors import ConfigError
from launcher.plan import PlannedService, StackPlan, render
from launcher.ports import HOST
from launcher.processes import (
    ChildProcess,
    describe_exit,
    log_tail,
    start_child,
    stop_child,
    stop_children,
)
from launcher.records import ServiceRecord
from opea.stack import APP_MODULE, MEGASERVICE_URL_VARIABLE, Role


def _module_file(name: str) -> Path:
    """The file of one of this project's modules, found by name: the launcher runs the app's
    page script but does not import the app (the layering rule in pyproject.toml)."""
    spec = find_spec(name)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    return Path(spec.origin)


APP_SCRIPT = _module_file(APP_MODULE)


def child_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    # Loopback traffic must never go through a proxy (OPEA's aiohttp calls trust the env).
    loopback = "127.0.0.1,localhost"
    for name in ("no_proxy", "NO_PROXY"):
        env[name] = f"{env[name]},{loopback}" if env.get(name) else loopback
    # OPEA turns on OTLP export when this is set, and logs tracebacks when nothing listens.
    env.pop("TELEMETRY_ENDPOINT", None)
    # Only `models pull` needs the user's Hugging Face token; no service gets it, so no
    # service can log it.
    env.pop("HF_TOKEN", None)
    # Nor the remote endpoint's token: the remote runtime hands it to the app alone.
    env.pop("OPEA_CHAT_ENDPOINT_TOKEN", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def local_values(service: PlannedService, plan: StackPlan, gpu_layers: int = 0
                 ) -> dict[str, str]:
    """The template values of one service running as a process on 127.0.0.1."""
    urls = {planned.name.replace("-", "_") + "_url": planned.url for planned in plan.services}
    return {**plan.values, **urls, "python": sys.executable, "host": HOST,
            "port": str(service.port), "app_script": str(APP_SCRIPT),
            "gpu_layers": str(gpu_layers)}


def service_command(service: PlannedService, plan: StackPlan, gpu_layers: int = 0
                    ) -> list[str]:
    if service.spec.local_command is None:
        raise ConfigError(f"the {service.name} service runs only as a container",
                          hint="use --runtime docker")
    return render(service.spec.local_command, local_values(service, plan, gpu_layers))


def stack_app_environment(plan: StackPlan) -> dict[str, str]:
    """The app's way to the megaservice when the stack runs it."""
    return {MEGASERVICE_URL_VARIABLE: plan.service("megaservice").url}


class ProcessRunner:
    """``gpu_layers`` is asked only when the LLM server starts here: the other services
    need not load llama.cpp or probe the GPUs to start. ``app_environment`` is what the
    app gets in its environment to reach the megaservice (the remote runtime's endpoint
    is not in the plan)."""

    def __init__(self, log_dir: Path, gpu_layers: Callable[[], int] = lambda: 0,
                 app_environment: Callable[[StackPlan], dict[str, str]] = stack_app_environment):
        self.log_dir = log_dir
        self._gpu_layers = gpu_layers
        self._app_environment = app_environment
        self._children: dict[str, ChildProcess] = {}

    def start(self, service: PlannedService, plan: StackPlan) -> None:
        env = child_environment()
        if service.spec.role is Role.UI:
            env.update(self._app_environment(plan))
        layers = self._gpu_layers() if service.spec.role is Role.LLM else 0
        self._children[service.name] = start_child(
            service.name, service_command(service, plan, layers),
            self.log_dir / f"{service.name}.log", env)

    def exit_status(self, service: str) -> str | None:
        code = self._children[service].exit_code()
        return None if code is None else describe_exit(code)

    def log_tail(self, service: str, lines: int = 50) -> str:
        return log_tail(self._children[service].log_path, lines)

    def log_location(self, service: str) -> str:
        return str(self.log_dir / f"{service}.log")

    def records(self) -> list[ServiceRecord]:
        return [child.record() for child in self._children.values()]

    def stop_service(self, service: str) -> None:
        child = self._children.pop(service, None)
        if child is not None:
            stop_child(child)

    def stop_all(self) -> None:
        """Newest first, all at once (see ``stop_children``). Safe to call twice."""
        stop_children([self._children[name] for name in reversed(list(self._children))])
