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

from launcher.private_files import PRIVATE_UMASK
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
            # Logs, the history, the RAG index: whatever a service writes is the user's
            # alone, whoever started the launcher and with whatever umask.
            umask=PRIVATE_UMASK,
        )
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.NoSuchProcess:
        create_time = time.time()
    return ChildProcess(name=name, popen=popen, log_path=log_path, create_time=create_time)


def _group_members(children: list[ChildProcess]) -> list[psutil.Process]:
    """Processes still in our children's groups (a child's own children can outlive it),
    found in one pass over the process table."""
    groups = {child.pid: child.create_time for child in children}
    members = []
    for process in psutil.process_iter(["pid", "create_time"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            pgid = os.getpgid(process.pid)
            if pgid in groups and process.info["create_time"] >= groups[pgid]:
                members.append(process)
    return members


def stop_children(children: list[ChildProcess], timeout: float = 5.0) -> None:
    """SIGTERM every child's process group at once (in the order given), wait for them
    together, SIGKILL whatever is left after ``timeout``: the stop takes as long as the
    slowest child, not the sum of all."""
    running = [child for child in children if child.exit_code() is None]
    for child in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in running:
        try:
            child.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.popen.wait(timeout)
    leftovers = _group_members(children)
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(leftovers, timeout=timeout)


def stop_child(child: ChildProcess, timeout: float = 5.0) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left after ``timeout``."""
    stop_children([child], timeout)


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
