"""`opea-chat status`: is a session running, and what is it made of.

The running launcher answers through its control channel (it knows the live state: health
of each service, the device). Without a live launcher, the session file tells whether a
killed one left something behind.
"""

from __future__ import annotations

import json

from launcher.control import ControlClient
from launcher.paths import Paths
from launcher.records import StatusReport
from launcher.session_file import read_session
from launcher.stop import running_launcher

NOT_RUNNING = 3  # as `systemctl status` says of a unit that is not active


def collect_status(paths: Paths) -> StatusReport:
    """Raises SessionFileError for a session file that cannot be read (`stop` cleans up)."""
    record = read_session(paths.session_file)
    launcher = running_launcher(record)
    if launcher is None:
        return StatusReport(running=False, left_behind=tuple(
            entry.name for entry in record.services) if record else ())
    client = ControlClient.from_session(record)
    if client is None:
        return StatusReport(running=True, launcher_pid=launcher.pid)
    try:
        return client.status()
    finally:
        client.close()


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def render_status(status: StatusReport) -> str:
    if not status.running:
        lines = ["opea-chat is not running."]
        if status.left_behind:
            lines.append("A launcher that was killed left a session behind ("
                         + ", ".join(status.left_behind)
                         + "); `opea-chat stop` removes it.")
        return "\n".join(lines)
    model = status.model
    lines = [
        f"opea-chat is running (launcher PID {status.launcher_pid}, "
        f"up {_duration(status.uptime_s)})",
        f"  runtime   {status.runtime}, profile {status.profile}",
        f"  model     {model.name if model else None} ({model.path if model else None})",
        f"  device    {status.device}",
        f"  app       {status.urls.get('app')}",
        "  services",
    ]
    for service in status.services:
        where = f"PID {service.pid}" if service.pid is not None else \
            f"container {service.container or '?'}"
        health = "healthy" if service.healthy else "NOT healthy"
        lines.append(f"    {service.name:<12} {service.url:<24} {health:<12} {where}")
    return "\n".join(lines)


def show_status(paths: Paths, as_json: bool) -> int:
    status = collect_status(paths)
    print(json.dumps(status.to_json(), indent=2) if as_json else render_status(status))
    return 0 if status.running else NOT_RUNNING
