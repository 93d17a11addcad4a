"""`opea-chat models pull hf:...` as a user runs it, through the real huggingface_hub library.

No model hub is reachable from the test machines. The hub is played by a scripted HTTP
server on 127.0.0.1 (tests/http_stub.py) that answers the few requests huggingface_hub
makes (file metadata, file bytes with ranges, the repository's file list) the way
huggingface.co answers them, including its error codes; it records what it was sent, so the
tests see the token arrive and a resumed download ask for the rest only. What a real hub adds
(its CDN redirects, Xet storage, gated-model licences) is not exercised here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from launcher.ports import pick_free_port
from models.store import list_models, unfinished_pulls
from tests.http_stub import serve
from tests.model_files import hf_folder

FAKE_TOKEN = "hf_opeaChatTestTokenDoNotPrint0123456789"  # noqa: S105 (a fake, for the test)
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class ScriptedHub:
    """One repository's files; unknown repositories answer like a private or missing one."""

    repo: str
    files: dict[str, bytes]
    # Cut every file download after this many bytes (an unreliable network), if set.
    cut_after: int | None = None
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        path = unquote(urlparse(request.path).path)
        with self.lock:
            self.requests.append((request.command, path, dict(request.headers)))
        # Files resolve by branch or, once the library knows it, by commit.
        resolve = re.match(rf"^/{re.escape(self.repo)}/resolve/(?:main|{COMMIT})/(.+)$", path)
        api = f"/api/models/{self.repo}"
        if resolve and resolve.group(1) in self.files:
            self._file(request, self.files[resolve.group(1)])
        elif path.startswith(f"{api}/tree/main"):
            self._json(request, [{"type": "file", "path": name, "size": len(data),
                                  "oid": hashlib.sha1(data).hexdigest()}  # noqa: S324
                                 for name, data in sorted(self.files.items())])
        elif path.startswith(f"{api}/revision/main") or path == api:
            self._json(request, {"id": self.repo, "sha": COMMIT, "private": False,
                                 "siblings": [{"rfilename": name} for name in self.files]})
        elif resolve or path.startswith(f"{api}/"):
            self._error(request, 404, "EntryNotFound", "Entry not found")
        else:
            # huggingface.co answers a missing and a private repository alike.
            self._error(request, 401, "RepoNotFound", "Repository not found")

    def _json(self, request: BaseHTTPRequestHandler, body: object) -> None:
        data = json.dumps(body).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _error(self, request: BaseHTTPRequestHandler, status: int, code: str,
               message: str) -> None:
        data = json.dumps({"error": message}).encode()
        request.send_response(status)
        request.send_header("X-Error-Code", code)
        request.send_header("X-Error-Message", message)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(data)

    def _file(self, request: BaseHTTPRequestHandler, data: bytes) -> None:
        start = 0
        if match := re.match(r"bytes=(\d+)-", request.headers.get("Range", "")):
            start = int(match.group(1))
        request.send_response(206 if start else 200)
        request.send_header("X-Repo-Commit", COMMIT)
        request.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        request.send_header("Accept-Ranges", "bytes")
        request.send_header("Content-Length", str(len(data) - start))
        if start:
            request.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        request.end_headers()
        if request.command == "HEAD":
            return
        body = data[start:]
        if self.cut_after is not None:
            request.wfile.write(body[:self.cut_after])
            request.wfile.flush()
            request.close_connection = True
            request.connection.shutdown(2)
            return
        request.wfile.write(body)

    def file_requests(self) -> list[dict[str, str]]:
        return [headers for method, path, headers in self.requests
                if method == "GET" and "/resolve/" in path]


@pytest.fixture
def hub() -> Iterator[tuple[str, ScriptedHub]]:
    script = ScriptedHub("opea-chat-test/tiny", {})
    with serve(script.handle) as url:
        yield url, script


def pull(home: Path, source: str, endpoint: str,
         tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPEA_CHAT_HOME": str(home), "HF_ENDPOINT": endpoint,
           "HF_TOKEN": FAKE_TOKEN, "HF_HOME": str(tmp_path / "hf-home"),
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    return subprocess.run([sys.executable, "-m", "launcher", "models", "pull", source],
                          capture_output=True, text=True, env=env, check=False, timeout=120)


def assert_token_never_shown(result: subprocess.CompletedProcess[str], home: Path) -> None:
    assert FAKE_TOKEN not in result.stdout + result.stderr
    for path in home.rglob("*"):
        if path.is_file() and path.stat().st_size < 10_000_000:
            assert FAKE_TOKEN.encode() not in path.read_bytes(), path


def test_one_gguf_file_is_pulled_with_the_token_sent_and_never_shown(
        home: Path, smollm2: Path, tmp_path: Path, hub: tuple[str, ScriptedHub]) -> None:
    url, script = hub
    script.files = {"smollm2-135m-q4_1.gguf": smollm2.read_bytes()}
    result = pull(home, "hf:opea-chat-test/tiny:smollm2-135m-q4_1.gguf", url, tmp_path)
    assert result.returncode == 0, result.stderr
    target = home / "models" / "smollm2-135m-q4_1.gguf"
    assert result.stdout.splitlines()[-1] == f"smollm2-135m-q4_1 saved to {target}"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == \
        hashlib.sha256(smollm2.read_bytes()).hexdigest()
    assert [m.name for m in list_models(home / "models")] == ["smollm2-135m-q4_1"]
    assert unfinished_pulls(home / "models") == []
    # HF_TOKEN is honoured: every request to the hub carried it.
    assert script.requests
    assert all(headers.get("authorization") == f"Bearer {FAKE_TOKEN}" or
               headers.get("Authorization") == f"Bearer {FAKE_TOKEN}"
               for method, path, headers in script.requests if path != "/")
    assert_token_never_shown(result, home)


def test_an_interrupted_pull_leaves_no_model_and_the_next_one_resumes(
        home: Path, smollm2: Path, tmp_path: Path, hub: tuple[str, ScriptedHub]) -> None:
    url, script = hub
    data = smollm2.read_bytes()
    script.files = {"model.gguf": data}
    # huggingface_hub writes in 10 MiB chunks: a cut at 25 MB leaves 20 MiB to resume from.
    script.cut_after = 25_000_000
    first = pull(home, "hf:opea-chat-test/tiny:model.gguf", url, tmp_path)
    assert first.returncode == 1
    assert first.stderr == (
        f"Error: the download of hf:opea-chat-test/tiny:model.gguf from the Hugging Face Hub at "
        f"{url} broke off (IncompleteRead(25000000 bytes read, {len(data) - 25_000_000} more "
        "expected)); check the network; run the same pull again to resume\n")
    assert "Traceback" not in first.stderr and first.stderr.count("\n") == 1
    assert list_models(home / "models") == []  # nothing that looks like a model
    assert [p.name for p in unfinished_pulls(home / "models")] == [".model.gguf.part"]
    assert_token_never_shown(first, home)

    script.cut_after = None
    before = len(script.file_requests())
    second = pull(home, "hf:opea-chat-test/tiny:model.gguf", url, tmp_path)
    assert second.returncode == 0, second.stderr
    resumed = script.file_requests()[before:]
    assert resumed and resumed[0].get("Range", "").startswith("bytes=")
    assert resumed[0]["Range"] == f"bytes={20 * 2**20}-"
    model = home / "models" / "model.gguf"
    assert hashlib.sha256(model.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert unfinished_pulls(home / "models") == []


def test_a_safetensors_repository_becomes_a_checked_model_folder(
        home: Path, tmp_path: Path, hub: tuple[str, ScriptedHub]) -> None:
    url, script = hub
    made = hf_folder(tmp_path / "source")
    script.files = {path.name: path.read_bytes() for path in made.path.iterdir()}
    script.files["pytorch_model.bin"] = b"duplicate weights nobody needs" * 100
    result = pull(home, "hf:opea-chat-test/tiny", url, tmp_path)
    assert result.returncode == 0, result.stderr
    [model] = list_models(home / "models")
    assert (model.name, model.format) == ("tiny", "hf")
    assert sorted(p.name for p in model.path.iterdir()) == sorted(
        p.name for p in made.path.iterdir())  # no .bin duplicate, no hub bookkeeping
    assert unfinished_pulls(home / "models") == []


def test_a_missing_or_private_repository_and_a_missing_file(
        home: Path, tmp_path: Path, hub: tuple[str, ScriptedHub]) -> None:
    url, script = hub
    script.files = {"a.gguf": b"GGUF", "b.gguf": b"GGUF"}
    missing = pull(home, "hf:someone/private-model:x.gguf", url, tmp_path)
    assert missing.returncode == 1
    assert missing.stderr == (
        "Error: someone/private-model was not found on the Hugging Face Hub (or it is private); "
        "check the name; for a private model set HF_TOKEN to a read token that may see it\n")
    no_file = pull(home, "hf:opea-chat-test/tiny:c.gguf", url, tmp_path)
    assert no_file.stderr == (
        "Error: hf:opea-chat-test/tiny:c.gguf was not found on the Hugging Face Hub; see the "
        "files of opea-chat-test/tiny on huggingface.co and name one of them: "
        "hf:opea-chat-test/tiny:FILE\n")
    several = pull(home, "hf:opea-chat-test/tiny", url, tmp_path)
    assert several.stderr == (
        "Error: opea-chat-test/tiny holds 2 GGUF files (a.gguf, b.gguf); choose one: "
        "opea-chat models pull hf:opea-chat-test/tiny:a.gguf\n")
    for result in (missing, no_file, several):
        assert_token_never_shown(result, home)
    assert list_models(home / "models") == []


def test_an_unreachable_hub_fails_at_once_with_what_to_do(home: Path, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{pick_free_port()}"  # nothing listens there
    result = pull(home, "hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:model.gguf", endpoint,
                  tmp_path)
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: cannot reach the Hugging Face Hub at {endpoint} to pull "
        "hf:HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:model.gguf ([Errno 111] Connection "
        "refused); check the network or proxy settings (HTTPS_PROXY); run the same pull again "
        "to resume\n")
    assert_token_never_shown(result, home)
    assert not (home / "models").exists()
