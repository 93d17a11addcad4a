"""What a user does with a running session from another shell: status, logs, a terminal
chat, a model switch, a second launch, and stop; run as real commands against the real
local stack."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.stack_status import live_status, stack_info
from launcher.control import ControlClient
from launcher.errors import ControlError
from launcher.ports import is_port_free
from launcher.records import ModelSwitch
from launcher.session_file import read_session
from tests.launched import Launched

pytestmark = pytest.mark.integration


def cli(home: Path, *args: str, stdin: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher", *args], input=stdin,
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "OPEA_CHAT_HOME": str(home), **(env or {})})


@pytest.fixture(scope="module")
def running(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    home = tmp_path_factory.mktemp("session") / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / smollm2.name).symlink_to(smollm2)
    shutil.copy(smollm2, home / "models" / "second.gguf")  # a second model to switch to
    launched = Launched(["--no-browser"], home)
    try:
        launched.expect(r"^Ready: ")
        launched.session()
        yield launched
    finally:
        launched.cleanup()


def test_status_tells_what_runs_where(running: Launched) -> None:
    result = cli(running.home, "status")
    assert result.returncode == 0, result.stderr
    assert re.search(rf"^opea-chat is running \(launcher PID {running.process.pid}, up \d+ s\)$",
                     result.stdout, re.MULTILINE), result.stdout
    for name in ("llm", "megaservice", "app"):
        assert re.search(rf"^    {name} +http://127\.0\.0\.1:\d+ +healthy +PID \d+$",
                         result.stdout, re.MULTILINE), result.stdout
    as_json = json.loads(cli(running.home, "status", "--json").stdout)
    assert as_json["running"] and as_json["runtime"] == "local"
    assert as_json["device"].startswith("CPU")
    assert {s["name"]: s["healthy"] for s in as_json["services"]} == {
        "llm": True, "megaservice": True, "app": True}
    assert "control" not in as_json  # the token never leaves the session file


def test_the_app_sees_what_the_launcher_sees(running: Launched) -> None:
    info = stack_info({"OPEA_CHAT_HOME": str(running.home)})
    assert info.control is not None
    live = live_status(info)
    assert live.device.startswith("CPU: ")
    assert [(h.service, h.healthy) for h in live.services] == [
        ("llm", True), ("megaservice", True), ("app", True)]


def test_logs_of_one_service_and_of_all(running: Launched) -> None:
    llm_port = running.session()["urls"]["llm"]
    one = cli(running.home, "logs", "llm", "-n", "500")
    assert one.returncode == 0
    assert f"Uvicorn running on {llm_port}" in one.stdout
    assert not one.stdout.startswith("llm ")  # one service: no prefix
    every = cli(running.home, "logs", "-n", "5")
    assert {line.split(" | ")[0].strip() for line in every.stdout.splitlines()} == {
        "app", "llm", "megaservice"}
    unknown = cli(running.home, "logs", "vector-db")
    assert unknown.returncode == 2
    assert unknown.stderr == ("Error: no log for a service named 'vector-db'; services with "
                              "logs: app, llm, megaservice\n")


def test_a_piped_question_gets_a_streamed_answer_with_stats(running: Launched) -> None:
    result = cli(running.home, "chat", "--stats", "--max-tokens", "32",
                 stdin="What is the capital of France?\n")
    assert result.returncode == 0, result.stderr
    *answer, stats = result.stdout.strip().splitlines()
    assert "".join(answer).strip()
    assert re.fullmatch(r"time to first token \d+\.\d\d s, \d+\.\d tokens/s "
                        r"\(\d+ tokens in \d+\.\d\d s\)", stats), stats


def test_ctrl_c_stops_an_answer_and_a_second_leaves(running: Launched) -> None:
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a user's terminal running `opea-chat chat`
        os.environ["OPEA_CHAT_HOME"] = str(running.home)
        os.execv(sys.executable, [sys.executable, "-m", "launcher", "chat",  # noqa: S606
                                  "--max-tokens", "400"])
    seen = b""

    def read_until(pattern: bytes, timeout: float = 120) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while not re.search(pattern, seen):
            ready, _, _ = select.select([terminal], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no {pattern!r} in {seen!r}"
            seen += os.read(terminal, 4096)

    try:
        read_until(rb"> $")
        os.write(terminal, b"Write a long story about a dragon.\n")
        read_until(rb"Write a long story about a dragon\.\r\n.{40,}", timeout=120)
        os.write(terminal, b"\x03")  # Ctrl+C while the answer streams
        read_until(rb"\(stopped\)\r\n> $")
        os.write(terminal, b"Say hi.\n")
        read_until(rb"Say hi\.\r\n.+\r\n> $")  # the next question is answered
        os.write(terminal, b"\x03")  # Ctrl+C at the prompt leaves
        _, code = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(code) == 0
    finally:
        os.close(terminal)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_the_control_channel_answers_only_its_token(running: Launched) -> None:
    session_file = running.home / "state" / "session.json"
    assert stat.S_IMODE(session_file.stat().st_mode) == 0o600
    port = running.session()["control"]["port"]
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.get(f"http://127.0.0.1:{port}/v1/status", headers=headers)
        assert response.status_code == 401
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{_other_address()}:{port}/v1/status", timeout=2)


def _other_address() -> str:
    """This machine's address on a non-loopback interface, if any (else a loopback alias
    that the control channel does not listen on either)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent for UDP connect
            address: str = probe.getsockname()[0]
        except OSError:
            address = "127.0.0.2"
    return address


def test_switching_the_model_restarts_only_the_llm(running: Launched) -> None:
    before = {s["name"]: s for s in running.session()["services"]}
    client = ControlClient.from_session(read_session(running.home / "state" / "session.json"))
    assert client is not None
    try:
        assert client.switch_model("second", timeout=300) == ModelSwitch("second", True)
        with pytest.raises(ControlError, match="unknown model 'nope'"):
            client.switch_model("nope", timeout=60)
        status = client.status()
    finally:
        client.close()
    assert status.model is not None and status.model.name == "second"
    after = {s.name: s for s in status.services}
    assert after["llm"].pid != before["llm"]["pid"]
    assert after["megaservice"].pid == before["megaservice"]["pid"]
    assert after["app"].pid == before["app"]["pid"]
    assert all(s.healthy for s in status.services)
    answer = cli(running.home, "chat", "--max-tokens", "16", "Say hello.")
    assert answer.returncode == 0 and answer.stdout.strip()


def test_a_second_launch_opens_the_running_one(running: Launched, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)
    result = cli(running.home, "launch", env={"BROWSER": str(browser)})
    app_url = running.session()["urls"]["app"]
    assert result.returncode == 0, result.stderr
    assert f"opea-chat is already running (launcher PID {running.process.pid}): {app_url}" \
        in result.stdout
    for _ in range(50):
        if opened.exists():
            break
        time.sleep(0.1)
    assert opened.read_text().split() == [app_url]
    assert running.process.poll() is None  # the first one runs on, alone
    assert len(running.session()["services"]) == 3


def test_zz_stop_from_another_shell_leaves_nothing(running: Launched) -> None:
    ports = [int(url.rsplit(":", 1)[1]) for url in running.session()["urls"].values()]
    result = cli(running.home, "stop")
    assert result.returncode == 0, result.stderr
    assert f"Stopping the launcher (PID {running.process.pid}) ..." in result.stdout
    assert running.wait() == 0
    assert "Stopping (opea-chat stop)" in running.output
    assert running.survivors() == [] and running.recorded_alive() == []
    assert [port for port in ports if not is_port_free(port)] == []
    after = cli(running.home, "status")
    assert (after.returncode, after.stdout) == (3, "opea-chat is not running.\n")
    again = cli(running.home, "stop")
    assert (again.returncode, again.stdout) == (0, "Nothing was running.\n")
