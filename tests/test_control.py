"""The launcher's control channel on its own: who may talk to it and what it makes of
malformed requests (a real server on 127.0.0.1; the launcher's callbacks are recorders)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from launcher.control import ControlServer, shutdown_delay
from launcher.records import StatusReport


@pytest.fixture
def control() -> Iterator[tuple[ControlServer, list[str]]]:
    stopped: list[str] = []
    server = ControlServer(lambda: StatusReport(running=True), stopped.append, request_timeout=1.0)
    server.start()
    try:
        yield server, stopped
    finally:
        server.close()


def ask(server: ControlServer, method: str, path: str, body: bytes = b"",
        **headers: str) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        sent = {"Authorization": f"Bearer {server.token}", "Host": f"127.0.0.1:{server.port}",
                "Content-Length": str(len(body)), **headers}
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_dns_rebound_page_is_refused_even_with_the_token(
        control: tuple[ControlServer, list[str]]) -> None:
    server, stopped = control
    port = server.port
    assert ask(server, "GET", "/v1/status", Host=f"evil.example:{port}")[0] == 403
    assert ask(server, "POST", "/v1/shutdown", b"{}",
               Origin=f"http://evil.example:{port}")[0] == 403
    status, answer = ask(server, "GET", "/v1/status", Host=f"localhost:{port}")
    assert status == 200 and answer["running"] is True
    assert stopped == []


@pytest.mark.parametrize(("body", "headers", "error"), [
    (b"[1, 2]", {}, "the body must be a JSON object"),
    (b"{nope", {}, "the body is not JSON"),
    (b"{}", {"Content-Length": "lots"}, "the body is not JSON"),
    (b'{"after_s": "nan"}', {}, "after_s must be a number of seconds"),
    (b'{"after_s": "inf"}', {}, "after_s must be a number of seconds"),
    (b'{"after_s": [1]}', {}, "after_s must be a number of seconds"),
])
def test_malformed_requests_get_400_with_the_reason(
        control: tuple[ControlServer, list[str]], body: bytes, headers: dict[str, str],
        error: str) -> None:
    server, stopped = control
    assert ask(server, "POST", "/v1/shutdown", body, **headers) == (400, {"error": error})
    assert stopped == []
    # The server is still there for a proper request.
    assert ask(server, "GET", "/v1/status")[0] == 200


def test_shutdown_delay_is_bounded() -> None:
    assert shutdown_delay(None) == 0.0
    assert shutdown_delay(-3) == 0.0
    assert shutdown_delay("2.5") == 2.5
    assert shutdown_delay(1e9) == 5.0
    assert shutdown_delay(float("nan")) is None
    assert shutdown_delay(True) is None
