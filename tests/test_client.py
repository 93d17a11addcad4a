"""The OPEA client's failures, each a distinct error a user can act on."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler

import pytest

from launcher.ports import pick_free_port
from opea.client import OpeaClient
from opea.errors import (
    ClientError,
    EmptyAnswerError,
    RequestTimeoutError,
    ServiceHTTPError,
    ServiceUnreachableError,
)
from tests.http_stub import reply, serve

HEALTH = b'{"Service Title": "stub"}'


def test_unreachable_service_is_named_after_bounded_retries() -> None:
    url = f"http://127.0.0.1:{pick_free_port()}"
    with OpeaClient(url, connect_retries=2) as client, \
            pytest.raises(ServiceUnreachableError) as caught:
        client.health()
    assert url in caught.value.one_line()
    assert "opea-chat launch" in caught.value.one_line()


def test_connection_refused_at_first_is_retried_until_the_service_listens() -> None:
    with serve(reply(200, HEALTH, "application/json"), delay=0.3) as url, \
            OpeaClient(url, connect_retries=4) as client:
        assert client.health() == {"Service Title": "stub"}


def test_http_error_carries_status_and_body() -> None:
    with serve(reply(503, b"LLM still loading")) as url, OpeaClient(url) as client:
        with pytest.raises(ServiceHTTPError) as caught:
            client.chat("hi")
        assert caught.value.status_code == 503
        assert "LLM still loading" in caught.value.one_line()
        with pytest.raises(ServiceHTTPError, match="503"):
            list(client.chat_stream("hi"))


def stall(request: BaseHTTPRequestHandler) -> None:
    time.sleep(3)


def test_a_silent_service_times_out() -> None:
    with serve(stall) as url, OpeaClient(url, read_timeout=0.5) as client, \
            pytest.raises(RequestTimeoutError, match=r"sent nothing for 0\.5 s"):
        client.chat("hi")


def test_a_stream_of_only_done_is_an_empty_answer() -> None:
    with serve(reply(200, b"data: [DONE]\n\n", "text/event-stream")) as url, \
            OpeaClient(url) as client, pytest.raises(EmptyAnswerError):
        list(client.chat_stream("hi"))


def cut_mid_answer(request: BaseHTTPRequestHandler) -> None:
    request.rfile.read(int(request.headers.get("Content-Length") or 0))
    request.send_response(200)
    request.send_header("Content-Type", "text/event-stream")
    request.send_header("Content-Length", "1000")
    request.end_headers()
    request.wfile.write(b"data: b'Hello'\n\n")
    request.wfile.flush()
    request.close_connection = True


def test_a_stream_cut_mid_answer_is_reported_after_the_text_so_far() -> None:
    received = []
    with serve(cut_mid_answer) as url, OpeaClient(url) as client, \
            pytest.raises(ClientError, match="closed the connection before the answer ended"):
        for piece in client.chat_stream("hi"):
            received.append(piece)
    assert received == ["Hello"]


def test_an_answer_that_is_not_a_chat_completion_is_reported() -> None:
    with serve(reply(200, b'{"unexpected": true}', "application/json")) as url, \
            OpeaClient(url) as client, pytest.raises(ClientError, match="not a chat completion"):
        client.chat("hi")
