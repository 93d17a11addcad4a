"""The launch sequence: model, plan, start each service and wait for it, Ready, run, stop.

Whatever happens (a service fails, Ctrl+C, SIGTERM, SIGHUP), everything started is
stopped before ``launch`` returns or raises.
"""

from __future__ import annotations

import os
import time

from launcher.browser import open_in_browser
from launcher.errors import Interrupted, ModelError, ServiceExitedError
from launcher.health import LOG_LINES, wait_healthy
from launcher.local_runtime import LocalRuntime
from launcher.paths import Paths
from launcher.plan import StackPlan, plan_stack
from launcher.ports import is_port_free, pick_free_port
from launcher.progress import Progress
from launcher.runtime import Runtime
from launcher.session_file import remove_session, write_session
from launcher.settings import Settings
from launcher.signals import StopRequest, stop_on_signals
from models.store import LocalModel, ModelNotPulledError, pull_model, resolve_model

WATCH_INTERVAL = 0.25


def prepare_model(settings: Settings, paths: Paths, progress: Progress) -> LocalModel:
    try:
        return resolve_model(settings.model, paths.models_dir)
    except ModelNotPulledError as missing:
        progress.note(f"First run: {missing.entry.name} is not in {paths.models_dir} yet; "
                      "pulling it now.")
        pull_model(missing.entry.name, paths.models_dir, say=progress.note,
                   show_progress=progress.console.is_terminal)
        return resolve_model(settings.model, paths.models_dir)


def _session_record(runtime: Runtime, plan: StackPlan, settings: Settings) -> dict[str, object]:
    return {
        "launcher_pid": os.getpid(),
        "runtime": runtime.name,
        "profile": plan.profile,
        "model": {"name": plan.model.name, "path": str(plan.model.path)},
        # The chat app fits each conversation into this many tokens.
        "context_size": settings.context_size,
        "started_at": time.time(),
        "urls": {service.name: service.url for service in plan.services},
        "services": runtime.records(),
    }


def start_stack(plan: StackPlan, runtime: Runtime, stop: StopRequest, progress: Progress,
                paths: Paths, settings: Settings) -> None:
    """Start the services in plan order, each once what it waits for is healthy."""
    for service in plan.services:
        if stop():
            raise Interrupted(f"stopped before starting the {service.name} service")
        runtime.start(service, plan)
        write_session(paths.session_file, _session_record(runtime, plan, settings))
        with progress.waiting(service) as tick:
            seconds = wait_healthy(service, runtime, stop, tick)
        progress.healthy(service, seconds)


def watch(plan: StackPlan, runtime: Runtime, stop: StopRequest) -> None:
    """Return when a stop is requested; raise if any service ends on its own."""
    while not stop.wait(WATCH_INTERVAL):
        for service in plan.services:
            status = runtime.exit_status(service.name)
            if status is not None:
                raise ServiceExitedError(
                    service.name,
                    f"the {service.name} service {status}; the others were stopped",
                    hint=f"see {runtime.log_location(service.name)}",
                    details=runtime.log_tail(service.name, LOG_LINES),
                )


def launch(settings: Settings, paths: Paths, progress: Progress) -> int:
    with stop_on_signals() as stop:
        try:
            model = prepare_model(settings, paths, progress)
        except ModelError:
            # Ctrl+C reaches pip too (same terminal), which then fails the pull.
            if stop():
                raise Interrupted("stopped while pulling the model") from None
            raise
        if stop():
            raise Interrupted("stopped before anything was started")
        plan = plan_stack(settings, model, is_port_free, pick_free_port)
        for note in plan.notes:
            progress.note(note)
        runtime = LocalRuntime(settings, paths.log_dir)
        progress.note(f"Runtime: {runtime.name}; model: {model.name} ({model.path}); "
                      f"logs: {paths.log_dir}")
        try:
            start_stack(plan, runtime, stop, progress, paths, settings)
            app_url = plan.service("app").url
            progress.ready(app_url)
            if settings.open_browser and not open_in_browser(app_url):
                progress.note("No display found: open the address above in a browser.")
            watch(plan, runtime, stop)
            progress.note(f"Stopping ({stop.signal_name}) ...")
        finally:
            runtime.stop_all()
            remove_session(paths.session_file)
        progress.note("Stopped: every service opea-chat started has ended.")
        return 0
