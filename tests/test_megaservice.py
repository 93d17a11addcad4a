"""The chat megaservice (OPEA's orchestrator on comps) against the real llama.cpp server
and SmolLM2, through the product's client."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from launcher.ports import pick_free_port
from opea.client import ChatParams, OpeaClient
from opea.errors import AnswerFailedError, ServiceHTTPError
from tests.services import llm_server, megaservice

pytestmark = pytest.mark.integration
SHORT = ChatParams(max_tokens=24, temperature=0.0)


@pytest.fixture(scope="module")
def services(smollm2: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[str, str]]:
    logs = tmp_path_factory.mktemp("megaservice-logs")
    with llm_server(smollm2, logs, context_size=512) as llm, megaservice(llm, logs) as url:
        yield llm, url


@pytest.fixture(scope="module")
def stack(services: tuple[str, str]) -> str:
    return services[1]


@pytest.mark.parametrize("service", ["llm", "megaservice"])
def test_a_dns_rebound_page_is_refused(services: tuple[str, str], service: str) -> None:
    # A page at evil.example whose name now resolves to 127.0.0.1 sends its own name as
    # Host (and its origin as Origin): both are refused, and no CORS header lets it read.
    url = services[0] + "/v1/models" if service == "llm" else services[1] + "/v1/health_check"
    port = url.split(":")[2].split("/")[0]
    for headers in ({"Host": f"evil.example:{port}"},
                    {"Origin": f"http://evil.example:{port}"}):
        response = httpx.get(url, headers=headers, timeout=10)
        assert response.status_code == 403, headers
        assert "access-control-allow-origin" not in response.headers
    own = httpx.get(url, headers={"Origin": f"http://127.0.0.1:{port}"}, timeout=10)
    assert own.status_code == 200
    assert "access-control-allow-origin" not in own.headers
    assert httpx.get(url.replace("127.0.0.1", "localhost"), timeout=10).status_code == 200


@pytest.fixture
def client(stack: str) -> Iterator[OpeaClient]:
    with OpeaClient(stack, read_timeout=120) as opened:
        yield opened


def test_streamed_answer_arrives_in_pieces(client: OpeaClient) -> None:
    pieces = list(client.chat_stream("What is the capital of France?", SHORT))
    assert len(pieces) > 3
    assert "".join(pieces).strip()


def test_non_streamed_answer_with_token_usage(client: OpeaClient) -> None:
    result = client.chat("Say hello.", SHORT)
    assert result.text.strip()
    assert 0 < result.usage["completion_tokens"] <= 24


def test_the_whole_conversation_reaches_the_model(client: OpeaClient) -> None:
    conversation = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Remember the word 'pineapple'."},
        {"role": "assistant", "content": "I will remember: pineapple."},
        {"role": "user", "content": "Which word did I ask you to remember?"},
    ]
    result = client.chat(conversation, ChatParams(max_tokens=40, temperature=0.0))
    assert result.usage["prompt_tokens"] > 40  # all four turns, not only the last question
    assert "pineapple" in result.text.lower()


def test_chatqna_wire_format_on_the_raw_stream(stack: str) -> None:
    body = {"messages": "Hi", "max_tokens": 8}  # ChatQnA streams unless told otherwise
    with httpx.stream("POST", stack + "/v1/chatqna", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith(("data: b'", 'data: b"')) for e in events[:-1])


def test_context_overflow_while_streaming_is_reported_with_the_numbers(
        client: OpeaClient) -> None:
    # A prompt longer than the LLM's 512-token context: llama.cpp fails after the stream
    # began (HTTP 200 already sent); the stream must end with an error event that says so.
    with pytest.raises(AnswerFailedError) as caught:
        list(client.chat_stream("word " * 800, SHORT))
    message = caught.value.one_line()
    assert re.search(r"the conversation needs \d+ tokens but the model's context holds 512",
                     message), message


def test_the_apps_async_stream_reports_the_overflow_too(client: OpeaClient) -> None:
    # The app writes answers with chat_stream_async: the same error event must become the
    # same error there, not an "empty answer".
    async def drain() -> str:
        return "".join([piece async for piece in client.chat_stream_async("word " * 800,
                                                                          SHORT)])

    with pytest.raises(AnswerFailedError) as caught:
        asyncio.run(drain())
    assert "the model's context holds 512" in caught.value.one_line()


def test_an_error_event_ends_the_raw_stream(stack: str) -> None:
    body = {"messages": "word " * 800, "max_tokens": 8}
    with httpx.stream("POST", stack + "/v1/chatqna", json=body, timeout=60) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines[-3] == "event: error" and lines[-1] == "data: [DONE]"
    assert "context holds 512" in json.loads(lines[-2].removeprefix("data: "))["message"]


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("stream", "false", "stream must be true or false, not 'false'"),
    ("top_p", 7, "top_p must be between 0 and 1, not 7"),
    ("temperature", "hot", "temperature must be a number, not 'hot'"),
    ("max_tokens", 0, "max_tokens must be a whole number of at least 1, not 0"),
])
def test_bad_values_get_400_with_a_one_line_reason(stack: str, field: str, value: object,
                                                   reason: str) -> None:
    body = {"messages": "hi", "max_tokens": 8, field: value}
    response = httpx.post(stack + "/v1/chatqna", json=body, timeout=30)
    assert response.status_code == 400
    assert response.json() == {"detail": reason}


def test_a_non_object_body_gets_400(stack: str) -> None:
    response = httpx.post(stack + "/v1/chatqna", json=["hi"], timeout=30)
    assert response.status_code == 400 and "JSON object" in response.text


def test_llm_failure_without_streaming_is_a_502_with_the_llm_reason(client: OpeaClient) -> None:
    with pytest.raises(ServiceHTTPError) as caught:
        client.chat("word " * 800, SHORT)
    assert caught.value.status_code == 502
    assert "context" in caught.value.body
    assert "Traceback" not in caught.value.body and ".py" not in caught.value.body


def test_bad_requests_get_400_with_the_reason(client: OpeaClient, stack: str) -> None:
    with pytest.raises(ServiceHTTPError) as caught:
        client.chat([{"role": "user", "content": "   "}])
    assert caught.value.status_code == 400
    assert "non-empty user message" in caught.value.body
    response = httpx.post(stack + "/v1/chatqna", content=b"{not json", timeout=10)
    assert response.status_code == 400
    response = httpx.post(stack + "/v1/chatqna", json={"messages": [{"role": "robot",
                                                                      "content": "x"}]})
    assert response.status_code == 400 and "unknown message role" in response.text


def test_unreachable_llm_is_a_502_naming_it(tmp_path: Path) -> None:
    dead_llm = f"http://127.0.0.1:{pick_free_port()}"
    with megaservice(dead_llm, tmp_path) as url, OpeaClient(url) as client:
        for ask in (lambda: client.chat("hi"), lambda: list(client.chat_stream("hi"))):
            with pytest.raises(ServiceHTTPError) as caught:
                ask()
            assert caught.value.status_code == 502
            assert f"cannot reach the LLM server at {dead_llm}" in caught.value.body


# llama-cpp-python prints this when it notices that its client went away mid-stream.
LLM_SAW_DISCONNECT = "Disconnected from client"


def wait_for_text(path: Path, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return True
        time.sleep(0.05)
    return False


def test_closing_the_client_stream_stops_generation_upstream(smollm2: Path,
                                                             tmp_path: Path) -> None:
    # The LLM server runs with interrupt_requests off (the stack's command), so llama.cpp
    # keeps generating for a vanished client unless its own HTTP stream is closed: only the
    # megaservice closing it can free the server.
    with llm_server(smollm2, tmp_path, context_size=2048) as llm, \
            megaservice(llm, tmp_path) as url, OpeaClient(url, read_timeout=120) as client:
        story = client.chat_stream("Write a very long story about a dragon and a knight.",
                                   ChatParams(max_tokens=1800, temperature=0.8))
        received = [next(story) for _ in range(5)]
        story.close()
        assert "".join(received).strip()
        assert wait_for_text(tmp_path / "llm.log", LLM_SAW_DISCONNECT, timeout=30), \
            (tmp_path / "llm.log").read_text()[-2000:]
        # The server is free: the next request is answered (not queued behind 1800 tokens).
        assert client.chat("Say hi.", ChatParams(max_tokens=8, temperature=0.0)).text.strip()


def test_concurrent_chats_are_all_answered_in_full(client: OpeaClient) -> None:
    # Two tabs, or the terminal chat beside the app: no answer may cut off another.
    from concurrent.futures import ThreadPoolExecutor

    def ask(number: int) -> str:
        return "".join(client.chat_stream(f"Count from {number} to {number + 5}.",
                                          ChatParams(max_tokens=24, temperature=0.0)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(ask, range(4)))
    assert all(answer.strip() for answer in answers), answers
