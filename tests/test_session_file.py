"""The session file as the one validating reader sees it: records round-trip, a damaged
or old file is one line through the real CLI, and `stop` still ends what such a file
names, by PID and start time (never a process that merely reuses a PID)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from launcher.errors import RecordError, SessionFileError
from launcher.records import (
    SCHEMA_VERSION,
    ContainerRecord,
    ModelSwitch,
    ProcessRecord,
    SessionRecord,
    StatusReport,
)
from launcher.session_file import read_session, write_session
from tests.session_records import session_record

# No engine behind this socket: the label clean-up of a damaged file finds nothing, at once.
NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/opea-chat-test.sock"}


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "OPEA_CHAT_HOME": str(home), **NO_ENGINE})


@pytest.fixture
def sleeper() -> Iterator[psutil.Process]:
    """A process standing in for a service a killed launcher left running."""
    popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                             start_new_session=True)
    try:
        yield psutil.Process(popen.pid)
    finally:
        popen.kill()
        popen.wait(10)


def gone_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    return gone.pid


def test_a_record_round_trips_and_a_bad_field_is_named() -> None:
    record = session_record(urls={"app": "http://127.0.0.1:1"})
    record = SessionRecord(**{**record.__dict__, "services": (
        ProcessRecord("llm", 10, 10, 1.5, "/l.log"), ContainerRecord("mega", "c", "i", "s"))})
    assert SessionRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    data = record.to_json()
    data["services"][0]["pid"] = "10"
    with pytest.raises(RecordError, match="service 'llm': 'pid' is missing or not a int"):
        SessionRecord.from_json(data)
    assert record.to_json()["schema"] == SCHEMA_VERSION
    assert ModelSwitch.from_json(ModelSwitch("m", True).to_json()) == ModelSwitch("m", True)
    assert StatusReport.from_json({"running": False}) == StatusReport(running=False)
    with pytest.raises(RecordError, match="'healthy'"):
        broken = {"running": True, "launcher_pid": 1, "runtime": "local",
                               "profile": "chat", "context_size": 1, "started_at": 0,
                               "uptime_s": 0, "device": "CPU", "urls": {},
                               "services": [{"name": "llm", "url": "u", "healthy": "yes"}]}
        StatusReport.from_json(broken)


def test_a_damaged_or_old_session_file_is_one_line_in_status(home: Path) -> None:
    state = home / "state"
    state.mkdir(parents=True)
    (state / "session.json").write_text('{"launcher_pid": 12')
    result = cli(home, "status")
    assert result.returncode == 1
    assert result.stderr == (f"Error: the session file {state / 'session.json'} is damaged "
                             "(not JSON); `opea-chat stop` ends what it recorded and removes "
                             "it\n")
    (state / "session.json").write_text(json.dumps({"launcher_pid": 12, "services": []}))
    result = cli(home, "status")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "written by an older opea-chat" in result.stderr
    with pytest.raises(SessionFileError):
        read_session(state / "session.json")


def test_stop_ends_what_an_old_session_file_names(home: Path, sleeper: psutil.Process) -> None:
    state = home / "state"
    state.mkdir(parents=True)
    # The older format: no schema version; the launcher is gone, one service still runs.
    (state / "session.json").write_text(json.dumps({
        "launcher_pid": gone_pid(), "launcher_create_time": time.time(), "runtime": "local",
        "services": [{"name": "llm", "pid": sleeper.pid, "pgid": sleeper.pid,
                      "create_time": sleeper.create_time(), "log": "/x.log"}]}))
    result = cli(home, "stop")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Warning: cannot use the session file ")
    assert lines[1:] == [f"Removed what was left: llm (PID {sleeper.pid})", "Stopped."]
    assert not sleeper.is_running() or sleeper.status() == psutil.STATUS_ZOMBIE
    assert not (state / "session.json").exists()


def test_stop_with_a_damaged_file_says_so_and_spares_a_reused_pid(home: Path,
                                                      sleeper: psutil.Process) -> None:
    state = home / "state"
    state.mkdir(parents=True)
    (state / "session.json").write_text('{"runtime": "loc')  # cut short by a full disk
    result = cli(home, "stop")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"Warning: the session file {state / 'session.json'} is damaged (not JSON)",
        "Nothing was running."]
    assert not (state / "session.json").exists()
    # The PID is the sleeper's, the start time is not: another program got that PID since.
    (state / "session.json").write_text(json.dumps({"runtime": "local", "services": [
        {"name": "llm", "pid": sleeper.pid, "pgid": sleeper.pid,
         "create_time": sleeper.create_time() - 1000, "log": "/x.log"}]}))
    result = cli(home, "stop")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == ["Nothing was running."]
    assert sleeper.is_running() and sleeper.status() != psutil.STATUS_ZOMBIE
    assert not (state / "session.json").exists()
    write_session(state / "session.json", session_record())
    assert cli(home, "status").stdout.startswith("opea-chat is not running.")
