"""`opea-chat status`: is a session running, and what is it made of.

The running launcher answers through its control channel (it knows the live state: health
of each service, the device). Without a live launcher, the session file tells whether a
killed one left something behind.
"""

from __future__ import annotations

import json

from launcher.checks import Status
from launcher.control import ControlClient
from launcher.errors import ConfigError
from launcher.paths import Paths
from launcher.preflight import data_disk
from launcher.records import StatusReport
from launcher.session_file import read_session
from launcher.settings import Settings, load_settings
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
        *(f"  note      {note}" for note in status.notes),
        "  services",
    ]
    for service in status.services:
        where = f"PID {service.pid}" if service.pid is not None else \
            "remote endpoint" if service.elsewhere else \
            f"container {service.container or '?'}"
        health = "healthy" if service.healthy else "NOT healthy"
        lines.append(f"    {service.name:<12} {service.url:<24} {health:<12} {where}")
    return "\n".join(lines)


def warnings(paths: Paths) -> list[str]:
    """What may soon stop the session working though it runs: a nearly full data disk."""
    try:
        settings = load_settings(paths)
    except ConfigError:
        settings = Settings()  # launch reports the broken setting; status still tells
    check = data_disk(paths.data_dir, settings)
    return [f"{check.detail}; {check.fix}"] if check.status is not Status.PASS else []


def show_status(paths: Paths, as_json: bool) -> int:
    status = collect_status(paths)
    found = warnings(paths)
    if as_json:
        report = status.to_json()
        if found:
            report["warnings"] = found
        print(json.dumps(report, indent=2))
    else:
        print("\n".join([render_status(status), *(f"Warning: {line}" for line in found)]))
    return 0 if status.running else NOT_RUNNING
