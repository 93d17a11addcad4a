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
from typing import Any

import psutil

from launcher.control import ControlClient
from launcher.errors import ControlError
from launcher.paths import Paths
from launcher.progress import Progress
from launcher.session_file import read_session, remove_session
from opea.errors import OpeaChatError

LAUNCHER_STOP_TIMEOUT = 60.0


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


def running_launcher(record: dict[str, Any] | None) -> psutil.Process | None:
    if not record:
        return None
    return _process(record["launcher_pid"], record.get("launcher_create_time"))


def reap_local(record: dict[str, Any]) -> list[str]:
    """End the recorded child processes that are still alive; return their names."""
    ended = []
    for service in record.get("services", []):
        if "pid" not in service:
            continue
        process = _process(service["pid"], service.get("create_time"))
        if process is None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service["pgid"], signal.SIGTERM)
        _, alive = psutil.wait_procs([process], timeout=5)
        for straggler in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service["pgid"], signal.SIGKILL)
            straggler.wait(5)
        ended.append(f"{service['name']} (PID {service['pid']})")
    return ended


def reap_docker(paths: Paths) -> list[str]:
    """Remove this home's labelled containers and networks, if Docker answers."""
    from launcher.docker_engine import connect
    from launcher.docker_plan import home_label
    from launcher.docker_runtime import remove_leftovers

    try:
        client = connect(timeout=3)
    except OpeaChatError:
        return []
    try:
        return remove_leftovers(client, home_label(paths.state_dir))
    finally:
        client.close()


def reap_leftovers(paths: Paths, record: dict[str, Any] | None) -> list[str]:
    """What a dead launcher left: recorded processes and labelled containers."""
    ended = reap_local(record) if record else []
    ended += reap_docker(paths)
    remove_session(paths.session_file)
    return ended


def ask_to_stop(launcher: psutil.Process, record: dict[str, Any] | None) -> None:
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
    record = read_session(paths.session_file)
    launcher = running_launcher(record)
    if launcher is not None:
        progress.note(f"Stopping the launcher (PID {launcher.pid}) ...")
        ask_to_stop(launcher, record)
        deadline = time.monotonic() + LAUNCHER_STOP_TIMEOUT
        while launcher.is_running() and launcher.status() != psutil.STATUS_ZOMBIE \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        if launcher.is_running() and launcher.status() != psutil.STATUS_ZOMBIE:
            progress.note(f"The launcher did not stop within {LAUNCHER_STOP_TIMEOUT:g} s; "
                          "ending it and what it started.")
            launcher.kill()
        record = read_session(paths.session_file)
    ended = reap_leftovers(paths, record)
    if ended:
        progress.note("Removed what was left: " + ", ".join(ended))
    if launcher is None and not ended:
        progress.note("Nothing was running.")
    else:
        progress.note("Stopped.")
    return 0
