"""The launch sequence: model, runtime, plan, images, start each service once what it waits
for is healthy (independent ones in parallel), Ready, run, stop.

Whatever happens (a service fails, Ctrl+C, SIGTERM, SIGHUP), everything started is
stopped before ``launch`` returns or raises.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import psutil

from launcher.browser import open_in_browser
from launcher.checks import Status, require
from launcher.errors import (
    AlreadyRunningError,
    DiskSpaceError,
    Interrupted,
    ModelError,
    NotEnoughMemoryError,
    ServiceExitedError,
)
from launcher.gpu import GpuReport
from launcher.health import LOG_LINES, wait_healthy
from launcher.local_runtime import LocalRuntime
from launcher.paths import Paths
from launcher.plan import PlannedService, StackPlan, plan_stack
from launcher.ports import is_port_free, pick_free_port
from launcher.preflight import model_download_disk, model_fit, model_shape, probe_ram
from launcher.progress import Progress
from launcher.runtime import Runtime
from launcher.runtime_choice import choose_runtime, probe_machine
from launcher.session_file import read_session, remove_session, write_session
from launcher.settings import Settings
from launcher.signals import StopRequest, stop_on_signals
from launcher.stop import reap_leftovers, running_launcher
from models.pull import pull_model
from models.store import LocalModel, ModelNotPulledError, resolve_model

WATCH_INTERVAL = 0.25
TICK = 0.1


def prepare_model(settings: Settings, paths: Paths, progress: Progress) -> LocalModel:
    try:
        return resolve_model(settings.model, paths.models_dir)
    except ModelNotPulledError as missing:
        require(model_download_disk(missing.entry, paths.models_dir), DiskSpaceError)
        progress.note(f"First run: {missing.entry.name} is not in {paths.models_dir} yet; "
                      "pulling it now.")
        pull_model(missing.entry.name, paths.models_dir, say=progress.note,
                   show_progress=progress.interactive)
        return resolve_model(settings.model, paths.models_dir)


def check_model_fits(plan: StackPlan, settings: Settings, runtime: Runtime,
                     progress: Progress) -> None:
    """Refuse a model that cannot fit the memory it will run in, before any image pull;
    say how close it is when it fits only just."""
    shape = model_shape(plan.model)
    if shape is None:
        return
    gpus = getattr(runtime, "gpus", None) or GpuReport()
    fit = require(model_fit(plan.model.name, shape, plan.model.format, settings,
                            plan.runtime, gpus, probe_ram()), NotEnoughMemoryError)
    if fit.status is Status.WARN:
        progress.note(f"Warning: {fit.detail}; {fit.fix}")


def make_runtime(name: str, settings: Settings, paths: Paths) -> Runtime:
    if name == "docker":
        from launcher.docker_runtime import DockerRuntime

        return DockerRuntime(settings, paths)
    return LocalRuntime(paths.log_dir)


def _session_record(runtime: Runtime, plan: StackPlan) -> dict[str, object]:
    me = psutil.Process()
    return {
        "launcher_pid": me.pid,
        "launcher_create_time": me.create_time(),
        "runtime": runtime.name,
        "profile": plan.profile,
        "model": {"name": plan.model.name, "path": str(plan.model.path),
                  "format": plan.model.format},
        "started_at": time.time(),
        "urls": {service.name: service.url for service in plan.services},
        "services": runtime.records(),
    }


def start_stack(plan: StackPlan, runtime: Runtime, stop: StopRequest, progress: Progress,
                paths: Paths) -> None:
    """Start each service as soon as everything it waits for is healthy; wait for the
    health of those already started in parallel; fail on the first failure."""
    healthy: set[str] = set()
    pending = list(plan.services)
    failed = threading.Event()

    def stopping() -> bool:
        return stop() or failed.is_set()

    with ThreadPoolExecutor(max_workers=max(1, len(pending))) as pool:
        waits: dict[Future[float], PlannedService] = {}
        while pending or waits:
            for service in [s for s in pending if set(s.spec.waits_for) <= healthy]:
                if stop():
                    raise Interrupted(f"stopped before starting the {service.name} service")
                pending.remove(service)
                runtime.start(service, plan)
                write_session(paths.session_file, _session_record(runtime, plan))
                progress.waiting(service)
                waits[pool.submit(wait_healthy, service, runtime, stopping)] = service
            done, _ = wait(waits, timeout=TICK, return_when=FIRST_COMPLETED)
            progress.tick()
            for future in done:
                service = waits.pop(future)
                try:
                    seconds = future.result()
                except BaseException:
                    failed.set()  # the other waits end at once; teardown follows
                    raise
                progress.healthy(service, seconds)
                healthy.add(service.name)


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


def _claim_home(paths: Paths, progress: Progress) -> None:
    """One launcher per home: refuse if one runs; clear what a killed one left."""
    record = read_session(paths.session_file)
    launcher = running_launcher(record)
    if launcher is not None and launcher.pid != os.getpid():
        assert record is not None
        raise AlreadyRunningError(
            f"opea-chat is already running (launcher PID {launcher.pid}) at "
            f"{record.get('urls', {}).get('app', '?')}",
            hint="use that one, or stop it with `opea-chat stop`",
        )
    left = reap_leftovers(paths, record)
    if left:
        progress.note("Removed what an earlier launcher left running: " + ", ".join(left))


def launch(settings: Settings, paths: Paths, progress: Progress) -> int:
    with stop_on_signals() as stop, progress:
        _claim_home(paths, progress)
        try:
            model = prepare_model(settings, paths, progress)
        except ModelError:
            # Ctrl+C reaches pip too (same terminal), which then fails the pull.
            if stop():
                raise Interrupted("stopped while pulling the model") from None
            raise
        runtime_name, reason = choose_runtime(
            settings.runtime, probe_machine() if settings.runtime == "auto" else None)
        plan = plan_stack(settings, model, is_port_free, pick_free_port, runtime_name)
        runtime = make_runtime(runtime_name, settings, paths)
        progress.note(f"Runtime: {runtime.name} ({reason}); profile: {plan.profile}; "
                      f"model: {model.name} ({model.path}); logs: {paths.log_dir}")
        for note in plan.notes:
            progress.note(note)
        try:
            check_model_fits(plan, settings, runtime, progress)
            runtime.prepare(plan, progress)
            if stop():
                raise Interrupted("stopped before anything was started")
            start_stack(plan, runtime, stop, progress, paths)
            app_url = plan.service("app").url
            progress.ready(app_url)
            if settings.open_browser and not open_in_browser(app_url):
                progress.note("No display found: open the address above in a browser.")
            watch(plan, runtime, stop)
            progress.note(f"Stopping ({stop.signal_name}) ...")
        finally:
            progress.stop_waiting()
            runtime.stop_all()
            remove_session(paths.session_file)
        progress.note("Stopped: every service opea-chat started has ended.")
        return 0
