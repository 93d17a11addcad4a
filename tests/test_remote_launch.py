"""`opea-chat launch --runtime remote`: only the app starts, pointed at a real megaservice
(real llama.cpp, SmolLM2) behind an HTTPS front with a bearer-token check and a CA the test
makes, all on 127.0.0.1. Ready comes after the endpoint's checks; the app answers in
Chromium; `status` shows the endpoint and its health; `stop` stops the app and leaves the
endpoint running; the token appears in no output, log, session file or command line."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from launcher.remote import Endpoint, check_endpoint
from tests.browser import ChatPage, chromium, screenshot
from tests.launched import Launched
from tests.services import llm_server, megaservice
from tests.tls_front import Pki, https_front, make_pki

pytestmark = pytest.mark.integration
READY = r"^Ready: (http://127\.0\.0\.1:\d+)$"
TOKEN = secrets.token_hex(16)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def front(smollm2: Path, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("remote-logs")
    with llm_server(smollm2, logs) as llm, megaservice(llm, logs) as url, \
            https_front(url, pki, TOKEN) as served:
        yield served


def cli(home: Path, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True,
                          text=True, timeout=120, check=False,
                          env={**os.environ, "OPEA_CHAT_HOME": str(home), **(env or {})})


def test_the_app_on_this_machine_answers_through_the_remote_endpoint(
        front: str, pki: Pki, home: Path) -> None:
    env = {"OPEA_CHAT_CA_BUNDLE": str(pki.ca_file), "OPEA_CHAT_ENDPOINT_TOKEN": TOKEN}
    launched = Launched(["--runtime", "remote", "--endpoint", front, "--no-browser"], home,
                        env=env)
    try:
        app_url = launched.expect(READY).group(1)
        assert f"Endpoint {front}: healthy in" in launched.output
        assert "certificate verified" in launched.output
        session = launched.session()
        assert [entry["name"] for entry in session["services"]] == ["app"]

        status = cli(home, "status")
        assert status.returncode == 0, status.stderr
        assert "runtime   remote" in status.stdout
        assert re.search(rf"^ +megaservice +{re.escape(front)} +healthy +remote endpoint$",
                         status.stdout, re.MULTILINE), status.stdout
        assert re.search(r"^ +app +http://127\.0\.0\.1:\d+ +healthy +PID \d+$", status.stdout,
                         re.MULTILINE), status.stdout

        with chromium() as browser:
            page = ChatPage(browser.new_page(), app_url).open()
            page.send("Say hello.")
            assert page.wait_for_answer().strip()
            screenshot(page.page, "remote-01-answer")
            assert page.errors == []

        app_pid = session["services"][0]["pid"]
        app_process = psutil.Process(app_pid)
        assert TOKEN not in " ".join(app_process.cmdline())

        stopped = cli(home, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert launched.wait() == 0, launched.output
        assert not psutil.pid_exists(app_pid) or \
            psutil.Process(app_pid).status() == psutil.STATUS_ZOMBIE
        # Only the app stopped: the endpoint still answers.
        assert check_endpoint(Endpoint(front, str(pki.ca_file), TOKEN)).answer is not None
        leaked = [path for path in home.rglob("*") if path.is_file()
                  and TOKEN in path.read_text(errors="replace")]
        assert TOKEN not in launched.output + status.stdout + stopped.stdout and not leaked
    finally:
        launched.cleanup()


def test_a_refused_token_fails_the_launch_before_anything_starts(front: str, pki: Pki,
                                                                home: Path) -> None:
    result = cli(home, "launch", "--runtime", "remote", "--endpoint", front, "--no-browser",
                 env={"OPEA_CHAT_CA_BUNDLE": str(pki.ca_file),
                      "OPEA_CHAT_ENDPOINT_TOKEN": "not-the-token"})
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: 127.0.0.1:") and "HTTP 401" in error, result.stderr
    assert "not-the-token" not in result.stdout + result.stderr
    assert not (home / "state" / "session.json").exists()


def test_doctor_checks_the_endpoint(front: str, pki: Pki, home: Path) -> None:
    env = {"OPEA_CHAT_CA_BUNDLE": str(pki.ca_file), "OPEA_CHAT_ENDPOINT_TOKEN": TOKEN}
    good = cli(home, "doctor", "--runtime", "remote", "--endpoint", front, env=env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "pass  endpoint" in good.stdout and "TLS verified" in good.stdout
    bad = cli(home, "doctor", "--runtime", "remote", "--endpoint", front,
              env={"OPEA_CHAT_ENDPOINT_TOKEN": TOKEN})
    assert bad.returncode == 1
    assert "FAIL  endpoint" in bad.stdout and "not trusted" in bad.stdout
    assert "fix: set ca_bundle" in bad.stdout
