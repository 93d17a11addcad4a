"""`opea-chat launch` on the local runtime, with the real model, end to end: progress and
Ready line, the browser opened, answers through the OPEA client and the app, and a stop
that leaves no process or port behind."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from streamlit.testing.v1 import AppTest

from app.server import PAGE_SCRIPT
from launcher.ports import is_port_free
from opea.client import ChatParams, OpeaClient
from opea.stack import MEGASERVICE_URL_VARIABLE
from tests.launched import Launched
from tests.model_files import unknown_architecture_gguf

pytestmark = pytest.mark.integration
READY = r"^Ready: (http://127\.0\.0\.1:\d+)$"
LaunchFactory = Callable[..., Launched]


@pytest.fixture
def launch(home_with_model: Path) -> Iterator[LaunchFactory]:
    started: list[Launched] = []

    def start(*args: str, env: dict[str, str] | None = None,
              default_ports: bool = False, terminal: bool = False) -> Launched:
        started.append(Launched(list(args), home_with_model, env, default_ports, terminal))
        return started[-1]

    yield start
    for launched in started:
        launched.cleanup()


def readable_by_others(home: Path) -> list[str]:
    """Every folder and file under ``home`` that its group or others may use (links
    aside: a model added by link is the user's own file)."""
    return [f"{path} {stat.filemode(path.lstat().st_mode)}" for path in home.rglob("*")
            if not path.is_symlink() and path.lstat().st_mode & 0o077]


def assert_all_gone(launched: Launched, ports: list[int]) -> None:
    assert launched.survivors() == []
    assert launched.recorded_alive() == []
    assert [port for port in ports if not is_port_free(port)] == []
    assert not (launched.home / "state" / "session.json").exists()


@contextlib.contextmanager
def occupied(port: int) -> Iterator[bool]:
    """Hold ``port`` the way another program would, if it is free now."""
    with socket.socket() as squatter:
        try:
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
        except OSError:
            yield False
            return
        yield True


def test_launch_answer_and_stop_with_ctrl_c(launch: LaunchFactory, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)

    with occupied(8888) as squatting:
        launched = launch(env={"BROWSER": str(browser)}, default_ports=True)
        app_url = launched.expect(READY).group(1)
    for name in ("llm", "megaservice", "app"):
        assert re.search(rf"^{name} +http://127\.0\.0\.1:\d+ +healthy in \d+\.\d s$",
                         launched.output, re.MULTILINE), launched.output
    if squatting:
        assert "port 8888 (megaservice) is in use; using" in launched.output
    session = launched.session()
    urls = session["urls"]
    assert urls["app"] == app_url
    assert session["context_size"] == 4096  # what the chat app trims conversations to

    for _ in range(50):  # the browser is opened from a thread, just after Ready
        if opened.exists():
            break
        time.sleep(0.1)
    assert opened.read_text().split() == [app_url]
    assert httpx.get(app_url, timeout=10).status_code == 200

    with OpeaClient(urls["megaservice"]) as client:
        streamed = "".join(client.chat_stream("What is the capital of France?",
                                              ChatParams(max_tokens=32)))
        assert streamed.strip()
        assert client.chat("Say hello.", ChatParams(max_tokens=16)).text.strip()

    monkeypatch.setenv(MEGASERVICE_URL_VARIABLE, urls["megaservice"])
    page = AppTest.from_file(str(PAGE_SCRIPT), default_timeout=120).run()
    assert page.title[0].value == "What can I help with?"  # the welcome state
    page.chat_input[0].set_value("Name a colour.").run()
    assert not page.exception
    assert not page.error, [e.value for e in page.error]
    question, answer = page.chat_message
    assert question.markdown[0].value == "Name a colour."
    assert answer.name == "assistant" and answer.markdown[0].value.strip()

    ports = [int(url.rsplit(":", 1)[1]) for url in urls.values()]
    launched.signal(signal.SIGINT)
    assert launched.wait() == 0, launched.output
    assert "Stopped: every service opea-chat started has ended." in launched.output
    assert_all_gone(launched, ports)
    # The history, the logs, the lock: nothing another user of the machine may read.
    assert (launched.home / "data").is_dir() and list((launched.home / "logs").iterdir())
    assert readable_by_others(launched.home) == []


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_everything(launch: LaunchFactory,
                                            stop_signal: signal.Signals) -> None:
    launched = launch("--no-browser")
    launched.expect(READY)
    ports = [int(url.rsplit(":", 1)[1]) for url in launched.session()["urls"].values()]
    launched.signal(stop_signal)
    assert launched.wait() == 0, launched.output
    assert f"Stopping ({stop_signal.name})" in launched.output
    assert_all_gone(launched, ports)


def test_closing_the_terminal_stops_everything_and_exits_0(launch: LaunchFactory) -> None:
    """The terminal window is closed: the kernel hangs up the launcher's terminal (SIGHUP,
    then every write to it fails), not a polite `kill -HUP` with the output still read."""
    launched = launch("--no-browser", terminal=True)
    launched.expect(READY)
    ports = [int(url.rsplit(":", 1)[1]) for url in launched.session()["urls"].values()]
    launched.hang_up()
    assert launched.wait() == 0, launched.output
    assert_all_gone(launched, ports)


def recorded_pid(launched: Launched, name: str) -> int:
    """The service's PID once the launcher has recorded it (it starts them together)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(AssertionError):
            for record in launched.session()["services"]:
                if record["name"] == name:
                    return int(record["pid"])
        time.sleep(0.05)
    raise AssertionError(f"{name} was never recorded:\n{launched.output}")


def test_ctrl_c_during_start_up_stops_what_was_started(launch: LaunchFactory) -> None:
    launched = launch("--no-browser")
    launched.expect(r"^waiting for llm")
    # A model server that hangs while it loads (our own test's child, by its recorded PID):
    # the launch cannot reach Ready before the Ctrl-C, however fast the rest starts.
    os.kill(recorded_pid(launched, "llm"), signal.SIGSTOP)
    launched.expect(r"^megaservice +http://\S+ +healthy in")  # started, and healthy
    launched.session()
    launched.signal(signal.SIGINT)
    assert launched.wait() == 130, launched.output
    assert "Interrupted: stopped" in launched.output
    assert "Ready:" not in launched.output
    assert len(launched.recorded) >= 2
    assert_all_gone(launched, [])


def test_a_service_that_dies_while_running_stops_the_rest(launch: LaunchFactory) -> None:
    launched = launch("--no-browser")
    launched.expect(READY)
    megaservice = next(r for r in launched.session()["services"] if r["name"] == "megaservice")
    # Our own test's launcher started this process: end it the way the OOM killer would.
    os.kill(megaservice["pid"], signal.SIGKILL)
    assert launched.wait() == 1, launched.output
    assert "Error: the megaservice service was killed by SIGKILL; the others were stopped" \
        in launched.output
    assert_all_gone(launched, [])


def test_an_llm_that_crashes_on_load_fails_fast_with_its_log(
        launch: LaunchFactory, home_with_model: Path) -> None:
    # A whole GGUF file (it passes the checks before launch) that llama.cpp cannot load.
    unknown_architecture_gguf(home_with_model / "models" / "broken.gguf")
    launched = launch("--no-browser", "--model", "broken", env={
        "OPEA_CHAT_LLM_START_TIMEOUT": "600"})
    assert launched.wait(timeout=300) == 1, launched.output
    assert re.search(r"Error: the llm service (exited with code \d+|was killed by \w+) "
                     r"while starting; see .*llm\.log", launched.output), launched.output
    assert "--- last lines ---" in launched.output
    assert "was not healthy" not in launched.output  # failed fast, not by the timeout
    assert_all_gone(launched, [])


def test_the_hf_token_reaches_no_service_output_or_log(
        launch: LaunchFactory, home_with_model: Path) -> None:
    token = "hf_launchTestTokenNeverShown0123456789"  # noqa: S105 (a fake, for the test)
    launched = launch("--no-browser", env={"HF_TOKEN": token})
    launched.expect(READY)
    for record in launched.session()["services"]:
        assert "HF_TOKEN" not in psutil.Process(record["pid"]).environ(), record["name"]
    launched.signal(signal.SIGINT)
    assert launched.wait() == 0, launched.output
    assert token not in launched.output
    written = [path for path in home_with_model.rglob("*")
               if path.is_file() and not path.is_symlink() and path.suffix != ".gguf"]
    assert any(path.suffix == ".log" for path in written)
    for path in written:
        assert token.encode() not in path.read_bytes(), path


def test_ctrl_c_during_the_first_pull_leaves_no_half_model(home: Path) -> None:
    launched = Launched(["--no-browser"], home)
    try:
        launched.expect(r"^Pulling smollm2-135m")
        # A terminal's Ctrl+C reaches the launcher's whole process group, pip included.
        os.killpg(launched.process.pid, signal.SIGINT)
        assert launched.wait() == 130, launched.output
        assert "Interrupted: stopped" in launched.output
        assert "Traceback" not in launched.output
        models = home / "models"
        assert not list(models.glob("*.part"))
        for model in models.glob("*.gguf"):  # a pull that won the race is complete
            assert model.stat().st_size == 98_362_432
        assert launched.survivors() == []
        assert not (home / "logs").exists()
    finally:
        launched.cleanup()


def test_two_launches_at_the_same_moment_make_one_stack(launch: LaunchFactory) -> None:
    """A double-click on the desktop shortcut: both start at once in one home."""
    launches = [launch("--no-browser"), launch("--no-browser")]
    deadline = time.monotonic() + 300
    while all(one.process.poll() is None for one in launches):
        assert time.monotonic() < deadline, "neither launch gave way:\n" + "\n".join(
            one.output for one in launches)
        time.sleep(0.1)
    loser = next(one for one in launches if one.process.poll() is not None)
    winner = next(one for one in launches if one is not loser)
    assert loser.wait() == 0, loser.output
    winner.expect(READY)
    record = winner.session()
    assert re.search(rf"^opea-chat is already (running \(launcher PID {winner.process.pid}\): "
                     rf"{re.escape(record['urls']['app'])}|starting in this home)",
                     loser.output, re.MULTILINE), loser.output
    assert "Ready:" not in loser.output
    assert len(record["services"]) == 3
    ports = [int(url.rsplit(":", 1)[1]) for url in record["urls"].values()]
    winner.signal(signal.SIGINT)
    assert winner.wait() == 0, winner.output
    assert_all_gone(winner, ports)
