"""Child processes that opea-chat starts and therefore may end.

Each child runs in its own session (so a terminal's Ctrl+C reaches only the launcher, which
then stops the children in order) and is ended by its recorded process group, never by
name. Output goes to one log file per service.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import psutil

from launcher.records import ProcessRecord


@dataclass
class ChildProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    create_time: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def record(self) -> ProcessRecord:
        return ProcessRecord(name=self.name, pid=self.pid, pgid=self.pid,
                             create_time=self.create_time, log=str(self.log_path))


def start_child(name: str, command: list[str], log_path: Path, env: dict[str, str]) -> ChildProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"=== {stamp} opea-chat starts {name}: {' '.join(command)}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.NoSuchProcess:
        create_time = time.time()
    return ChildProcess(name=name, popen=popen, log_path=log_path, create_time=create_time)


def _group_members(pgid: int, not_before: float) -> list[psutil.Process]:
    """Processes still in our child's group: a child's own children can outlive it."""
    members = []
    for process in psutil.process_iter(["pid", "create_time"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.pid) == pgid and process.info["create_time"] >= not_before:
                members.append(process)
    return members


def stop_child(child: ChildProcess, timeout: float = 5.0) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left after ``timeout``."""
    if child.exit_code() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        try:
            child.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.popen.wait(timeout)
    leftovers = _group_members(child.pid, child.create_time)
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(leftovers, timeout=timeout)


def log_tail(path: Path, lines: int = 50) -> str:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines)).rstrip()
    except FileNotFoundError:
        return ""


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
