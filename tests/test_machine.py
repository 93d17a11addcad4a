"""One look at the machine: Docker is asked only where it may be needed, and an engine
that accepts connections and never answers costs a bounded wait, never a hang."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.machine import look_at_machine
from launcher.runtime_choice import choose_runtime
from launcher.session_file import write_session
from tests.launched import Launched
from tests.session_records import session_record
from tests.silent_engine import SilentEngine, silent_engine


@pytest.fixture
def engine() -> Iterator[SilentEngine]:
    # A unix socket's path must be short (108 bytes): pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="engine-", dir="/tmp") as folder, \
            silent_engine(Path(folder) / "docker.sock") as silent:
        yield silent


def killed_local_session(home: Path) -> None:
    """The session file a killed local launcher leaves: its PID is gone."""
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    write_session(home / "state" / "session.json", session_record(
        launcher_pid=gone.pid, launcher_create_time=time.time() - 60, runtime="local"))


def test_a_hung_engine_is_a_finding_by_the_deadline(engine: SilentEngine,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", engine.docker_host)
    facts = look_at_machine(time.monotonic() + 1.0, docker=True)
    assert facts.client is None
    assert facts.docker.problem is not None and "did not answer" in facts.docker.problem
    assert engine.connections >= 1  # it was asked
    assert choose_runtime("auto", facts.for_runtime_choice())[0] == "local"


def test_a_local_look_never_asks_docker(engine: SilentEngine,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", engine.docker_host)
    facts = look_at_machine(time.monotonic() + 1.0, docker=False)
    assert not facts.docker_asked and facts.client is None
    assert engine.connections == 0


@pytest.mark.integration
def test_a_local_launch_and_stop_never_touch_docker(engine: SilentEngine,
                                                     home_with_model: Path) -> None:
    killed_local_session(home_with_model)  # reaping it must not ask Docker either
    env = {"DOCKER_HOST": engine.docker_host}
    launched = Launched(["--runtime", "local", "--no-browser"], home_with_model, env)
    try:
        launched.expect(r"^Ready: ")
        stop = subprocess.run([sys.executable, "-m", "launcher", "stop"], capture_output=True,
                              text=True, timeout=120, check=False,
                              env={**os.environ, "OPEA_CHAT_HOME": str(home_with_model), **env})
        assert stop.returncode == 0, stop.stderr
        assert stop.stdout.strip().endswith("Stopped."), stop.stdout
        assert launched.wait() == 0, launched.output
    finally:
        launched.cleanup()
    assert engine.connections == 0


def test_stop_of_a_killed_local_session_never_touches_docker(
        engine: SilentEngine, home: Path) -> None:
    killed_local_session(home)
    stop = subprocess.run([sys.executable, "-m", "launcher", "stop"], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "OPEA_CHAT_HOME": str(home),
                               "DOCKER_HOST": engine.docker_host})
    assert stop.returncode == 0, stop.stderr
    assert stop.stdout.strip() == "Nothing was running.", stop.stdout
    assert not (home / "state" / "session.json").exists()
    assert engine.connections == 0


