"""`opea-chat stop`: end the running launcher of this home, then anything it left.

Works from any shell and after a launcher was killed: the session file names the launcher
and the processes it started (PID and start time, so a reused PID is never hit), and Docker
labels name its containers and network. Idempotent: with nothing running it says so.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import psutil

from launcher.control import ControlClient
from launcher.errors import ControlError
from launcher.paths import Paths
from launcher.progress import Progress
from launcher.records import ProcessRecord, Salvage, SessionRecord
from launcher.session_file import read_for_cleanup, remove_session
from opea.errors import OpeaChatError

if TYPE_CHECKING:
    import docker

LAUNCHER_STOP_TIMEOUT = 60.0
# How often `stop` looks whether the launcher has ended (a wait that costs nothing).
STOP_POLL = 0.02


def _process(pid: int, create_time: float | None) -> psutil.Process | None:
    """The process with this PID, if it is still the one that was recorded."""
    try:
        process = psutil.Process(pid)
        if create_time is not None and abs(process.create_time() - create_time) > 1:
            return None
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    return process


def _ended(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for_end(process: psutil.Process, timeout: float) -> bool:
    """Whether the process ended within ``timeout``. A zombie counts as ended: its parent
    (a shell, a test) may not have reaped it yet."""
    deadline = time.monotonic() + timeout
    while not _ended(process):
        if time.monotonic() >= deadline:
            return False
        time.sleep(STOP_POLL)
    return True


def running_launcher(record: SessionRecord | Salvage | None) -> psutil.Process | None:
    if record is None or record.launcher_pid is None:
        return None
    return _process(record.launcher_pid, record.launcher_create_time)


def reap_local(processes: Iterable[ProcessRecord]) -> list[str]:
    """End the recorded child processes that are still alive; return their names."""
    ended = []
    for service in processes:
        process = _process(service.pid, service.create_time)
        if process is None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.pgid, signal.SIGTERM)
        if not wait_for_end(process, 5):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.pgid, signal.SIGKILL)
            wait_for_end(process, 5)
        ended.append(f"{service.name} (PID {service.pid})")
    return ended


def needs_docker_reaping(found: Salvage | None) -> bool:
    """Whether a killed launcher may have left containers: its session did not say it ran
    locally. Without a session file nothing was started (it is written before anything
    is); a local session never started a container, so Docker is not asked at all."""
    return found is not None and found.runtime != "local"


def reap_docker(paths: Paths, client: docker.DockerClient | None = None) -> list[str]:
    """Remove this home's labelled containers and networks, if Docker answers."""
    from launcher.container_runner import remove_leftovers
    from launcher.docker_engine import connect
    from launcher.docker_plan import home_label

    own = client is None
    try:
        client = client or connect(timeout=3)
    except OpeaChatError:
        return []
    try:
        return remove_leftovers(client, home_label(paths.state_dir))
    finally:
        if own:
            client.close()


def reap_leftovers(paths: Paths, found: Salvage | None,
                   client: docker.DockerClient | None = None) -> list[str]:
    """What a dead launcher left: recorded processes and labelled containers. ``found``:
    what its session file names (None: there is none). ``client``: a Docker connection
    already open (one is opened only where the session needs it)."""
    ended = reap_local(found.processes) if found is not None else []
    if needs_docker_reaping(found):
        ended += reap_docker(paths, client)
    remove_session(paths.session_file)
    return ended


def ask_to_stop(launcher: psutil.Process, record: SessionRecord | None) -> None:
    """Through the control channel where it answers, else by SIGTERM to the recorded PID
    (the launcher treats both alike)."""
    client = ControlClient.from_session(record)
    if client is not None:
        try:
            client.shutdown("opea-chat stop")
            return
        except ControlError:
            pass
        finally:
            client.close()
    launcher.send_signal(signal.SIGTERM)


def stop(paths: Paths, progress: Progress) -> int:
    record, found, problem = read_for_cleanup(paths.session_file)
    if problem is not None:
        progress.note(f"Warning: {problem}")
    launcher = running_launcher(found)
    if launcher is not None:
        progress.note(f"Stopping the launcher (PID {launcher.pid}) ...")
        ask_to_stop(launcher, record)
        if not wait_for_end(launcher, LAUNCHER_STOP_TIMEOUT):
            progress.note(f"The launcher did not stop within {LAUNCHER_STOP_TIMEOUT:g} s; "
                          "ending it and what it started.")
            launcher.kill()
        record, found, _ = read_for_cleanup(paths.session_file)
    ended = reap_leftovers(paths, found)
    if ended:
        progress.note("Removed what was left: " + ", ".join(ended))
    if launcher is None and not ended:
        progress.note("Nothing was running.")
    else:
        progress.note("Stopped.")
    return 0
