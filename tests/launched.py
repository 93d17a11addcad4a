"""`opea-chat launch` as a user runs it: a real process whose output is read line by line.

Clean-up ends the launcher and then, by the PIDs it recorded in its session file, anything
it left; so a failing test leaves no process behind.

With ``terminal=True`` the launcher runs in a real terminal (a pseudo-terminal that is its
controlling terminal, as in a terminal window), and ``hang_up`` closes that window.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import re
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from launcher.ports import pick_free_port
from launcher.session_file import read_session

# Colours, cursor moves and the live status line of a launch in a terminal.
_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def _controlling_terminal() -> None:
    """In the child, after ``setsid``: make its stdin (the pseudo-terminal) the session's
    controlling terminal, whose hang-up the kernel signals to it."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Launched:
    def __init__(self, args: list[str], home: Path, env: dict[str, str] | None = None,
                 default_ports: bool = False, terminal: bool = False):
        """``default_ports=False`` gives each service a random free port, so that a test
        never meets another program (or test run) on the well-known ones."""
        self.home = home
        ports = {} if default_ports else {
            f"OPEA_CHAT_{name}_PORT": str(pick_free_port()) for name in ("LLM", "MEGASERVICE",
                                                                       "APP")}
        environment = {**os.environ, "OPEA_CHAT_HOME": str(home), **ports, **(env or {})}
        command = [sys.executable, "-m", "launcher", "launch", *args]
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.recorded: list[dict[str, Any]] = []
        self._terminal: int | None = None
        self._hung_up = threading.Event()
        self.process: subprocess.Popen[Any]
        if terminal:
            self._terminal, child_side = os.openpty()
            try:
                self.process = subprocess.Popen(
                    command, stdin=child_side, stdout=child_side, stderr=child_side,
                    env=environment, start_new_session=True,
                    preexec_fn=_controlling_terminal)
            finally:
                os.close(child_side)  # the child's own copies keep it open
            self._reader = threading.Thread(target=self._read_terminal, daemon=True)
        else:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                env=environment, start_new_session=True,
            )
            self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _read_terminal(self) -> None:
        assert self._terminal is not None
        pending = b""
        while not self._hung_up.is_set():
            if not select.select([self._terminal], [], [], 0.1)[0]:
                continue
            try:
                chunk = os.read(self._terminal, 4096)
            except OSError:  # EIO: every copy of the terminal's other side is closed
                break
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._queue.put(_TERMINAL_CODES.sub("", line.decode(errors="replace")))
        self._queue.put(None)

    def hang_up(self) -> None:
        """Close the terminal window: the last copy of its master side is closed, and the
        kernel hangs up the launcher's controlling terminal."""
        assert self._terminal is not None, "started without terminal=True"
        self._hung_up.set()
        self._reader.join(10)
        os.close(self._terminal)
        self._terminal = None

    def expect(self, pattern: str, timeout: float = 180) -> re.Match[str]:
        """Wait for an output line matching ``pattern``; fail with the output so far."""
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if match := re.search(pattern, line):
                return match
        while True:
            try:
                received = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}:\n{self.output}") from None
            if received is None:
                raise AssertionError(f"launcher ended without {pattern!r}:\n{self.output}")
            self.lines.append(received)
            if match := re.search(pattern, received):
                return match

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def session(self) -> dict[str, Any]:
        """The session file as its JSON, once the one reader has validated it."""
        record = read_session(self.home / "state" / "session.json")
        assert record is not None, "no session file"
        data = record.to_json()
        self.recorded = data["services"]
        return data

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout)
        with contextlib.suppress(queue.Empty):
            while (line := self._queue.get(timeout=2)) is not None:
                self.lines.append(line)
        return code

    def recorded_alive(self) -> list[int]:
        alive = []
        for record in self.recorded:
            if "pid" not in record:  # a container: see tests.docker_fixtures.managed
                continue
            with contextlib.suppress(psutil.NoSuchProcess):
                process = psutil.Process(record["pid"])
                if abs(process.create_time() - record["create_time"]) < 1 and \
                        process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(record["pid"])
        return alive

    def survivors(self) -> list[int]:
        """PIDs of live processes started for this launch: they alone carry its
        OPEA_CHAT_HOME (a fresh temporary folder) in their environment."""
        found = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.pid != os.getpid() and \
                        process.environ().get("OPEA_CHAT_HOME") == str(self.home) and \
                        process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process.pid)
        return found

    def cleanup(self) -> None:
        if self._terminal is not None:
            self.hang_up()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        with contextlib.suppress(AssertionError):
            self.session()
        for pid in self.recorded_alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        for pid in self.survivors():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
