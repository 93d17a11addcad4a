"""Answers written by the app process, without Streamlit: they outlive whoever watched
them, Stop ends them (before the first token too, closing the connection upstream), and a
model that sends nothing is reported as not responding. Against real sockets: a scripted
megaservice for the failure cases, the real llama.cpp server and megaservice for the rest."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from app import chat
from app.generation import Generations
from app.history import History
from app.titles import INSTRUCTION
from app.tokens import estimate_tokens
from opea.client import ChatParams, OpeaClient
from opea.sources import USE_DOCUMENTS_FIELD, Source, sources_event
from opea.wire import done_event, encode_token
from tests.full_disk import fill, free_space, small_disk
from tests.http_stub import serve
from tests.services import llm_server, megaservice

PARAMS = ChatParams(max_tokens=32, temperature=0.7, top_p=1.0)


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / "history.sqlite3")


def request_for(history: History, question: str) -> chat.Request:
    conversation = history.create_conversation(params=PARAMS)
    history.add_question(conversation.id, question, "m", PARAMS)
    setup = chat.Setup(model="m", context_size=4096, count=estimate_tokens, use_cache=False)
    return chat.prepare(history, conversation, setup)


class Silent:
    """A megaservice that takes the request and never answers; it notes when the client
    hangs up (what stops generation upstream)."""

    def __init__(self, headers_first: bool = False) -> None:
        self.headers_first = headers_first
        self.asked = threading.Event()
        self.hung_up = threading.Event()

    def __call__(self, request: BaseHTTPRequestHandler) -> None:
        request.rfile.read(int(request.headers.get("Content-Length") or 0))
        if self.headers_first:  # streaming begun, no token yet
            request.send_response(200)
            request.send_header("Content-Type", "text/event-stream")
            request.end_headers()
            request.wfile.flush()
        self.asked.set()
        request.rfile.read(1)  # returns b"" once the client has closed the connection
        self.hung_up.set()


def slow_tokens(pieces: list[str], between: threading.Event) -> Callable[
        [BaseHTTPRequestHandler], None]:
    """Sends the first piece, then the rest once ``between`` is set."""
    def handle(request: BaseHTTPRequestHandler) -> None:
        request.rfile.read(int(request.headers.get("Content-Length") or 0))
        request.send_response(200)
        request.send_header("Content-Type", "text/event-stream")
        request.end_headers()
        request.wfile.write(encode_token(pieces[0]).encode())
        request.wfile.flush()
        between.wait(30)
        for piece in pieces[1:]:
            request.wfile.write(encode_token(piece).encode())
        request.wfile.write(done_event().encode())
        request.wfile.flush()
        request.close_connection = True

    return handle


def test_an_answer_goes_on_without_anyone_watching_and_is_stored(history: History) -> None:
    go_on = threading.Event()
    with serve(slow_tokens(["Hello", " there", "!"], go_on)) as url, OpeaClient(url) as client:
        generations = Generations(history, client)
        request = request_for(history, "Hi?")
        generation = generations.start(request)
        assert generation is not None
        # Whoever looks (a second tab, a reload) finds the same answer, not a new one.
        assert generations.start(request) is generation
        assert generations.get(request.conversation_id) is generation
        while generation.waiting:
            assert not generation.done.wait(0.01)
        assert generation.text == "Hello"
        go_on.set()
        assert generation.done.wait(30)
    stored = history.messages(request.conversation_id)[-1]
    assert (stored.role, stored.content, stored.status) == ("assistant", "Hello there!",
                                                            "complete")
    assert stored.completion_tokens == 3 and stored.first_token_seconds is not None
    assert generations.get(request.conversation_id) is None


def test_an_answer_from_the_documents_is_stored_with_its_sources(history: History) -> None:
    source = Source(file="plan.md", passage="The launch code is 7-4-1.")
    bodies: list[dict[str, object]] = []

    def rag(request: BaseHTTPRequestHandler) -> None:
        bodies.append(json.loads(request.rfile.read(int(request.headers["Content-Length"]))))
        request.send_response(200)
        request.send_header("Content-Type", "text/event-stream")
        request.end_headers()
        request.wfile.write((encode_token("7-4-1.") + done_event()
                             + sources_event([source])).encode())
        request.wfile.flush()
        request.close_connection = True

    with serve(rag) as url, OpeaClient(url) as client:
        generations = Generations(history, client)
        request = replace(request_for(history, "The launch code?"), use_documents=True)
        generation = generations.start(request)
        assert generation is not None
        assert generation.done.wait(30)
    assert bodies[0][USE_DOCUMENTS_FIELD] is True
    stored = history.messages(request.conversation_id)[-1]
    assert (stored.content, stored.status) == ("7-4-1.", "complete")
    assert list(stored.sources) == [source]


@pytest.mark.parametrize("headers_first", [False, True], ids=["no-reply", "no-token"])
def test_stop_before_the_first_token_hangs_up_on_the_megaservice(
        history: History, headers_first: bool) -> None:
    silent = Silent(headers_first)
    with serve(silent) as url, OpeaClient(url) as client:
        generations = Generations(history, client)
        request = request_for(history, "Anyone?")
        generation = generations.start(request)
        assert generation is not None
        assert silent.asked.wait(30)
        generations.stop(request.conversation_id)
        assert generation.done.wait(10)
        assert silent.hung_up.wait(10), "the request upstream was not cancelled"
    stored = history.messages(request.conversation_id)[-1]
    assert (stored.role, stored.content, stored.status) == ("assistant", "", "stopped")


def test_stop_mid_answer_keeps_the_partial_text(history: History) -> None:
    never = threading.Event()
    with serve(slow_tokens(["Once upon", " a time"], never)) as url, \
            OpeaClient(url) as client:
        generations = Generations(history, client)
        request = request_for(history, "A story?")
        generation = generations.start(request)
        assert generation is not None
        while generation.waiting:
            assert not generation.done.wait(0.01)
        generation.stop()
        assert generation.done.wait(10)
        never.set()
    stored = history.messages(request.conversation_id)[-1]
    assert (stored.content, stored.status) == ("Once upon", "stopped")


def test_a_model_that_sends_nothing_is_reported_as_not_responding(history: History) -> None:
    silent = Silent(headers_first=True)
    with serve(silent) as url, OpeaClient(url) as client:
        generations = Generations(history, client, silence_timeout=1.0)
        request = request_for(history, "Hello?")
        generation = generations.start(request)
        assert generation is not None
        assert generation.done.wait(30)
        assert silent.hung_up.wait(10)
    stored = history.messages(request.conversation_id)[-1]
    assert stored.status == "failed"
    assert stored.error is not None
    assert stored.error.startswith("the model is not responding: nothing came for 1 s")
    assert "opea-chat logs llm" in stored.error
    assert generations.last_not_responding is not None


@pytest.mark.integration
def test_stop_before_the_first_token_reaches_the_llm_through_the_megaservice(
        history: History, tmp_path: Path) -> None:
    silent_llm = Silent()  # it has not even begun its answer (still reading the prompt)
    with serve(silent_llm) as llm, megaservice(llm, tmp_path) as url, \
            OpeaClient(url) as client:
        generations = Generations(history, client)
        request = request_for(history, "Anyone?")
        generation = generations.start(request)
        assert generation is not None
        assert silent_llm.asked.wait(30)
        generation.stop()
        assert generation.done.wait(10)
        assert silent_llm.hung_up.wait(10), "the megaservice kept the LLM request open"
    assert history.messages(request.conversation_id)[-1].status == "stopped"


@pytest.mark.integration
def test_two_conversations_are_answered_at_once_by_the_real_stack(
        smollm2: Path, tmp_path: Path, history: History) -> None:
    with llm_server(smollm2, tmp_path, context_size=1024) as llm, \
            megaservice(llm, tmp_path) as url, OpeaClient(url, read_timeout=120) as client:
        generations = Generations(history, client)
        requests = [request_for(history, f"Name a {thing}.") for thing in ("fruit", "colour")]
        started = [generations.start(request) for request in requests]
        for generation in started:
            assert generation is not None and generation.done.wait(120)
    for request in requests:
        stored = history.messages(request.conversation_id)[-1]
        assert stored.status == "complete" and stored.content.strip()


def filling_then_answering(folder: Path, answer: str) -> Callable[[BaseHTTPRequestHandler],
                                                                   None]:
    """A megaservice during whose answer the disk holding ``folder`` fills up."""
    def handle(request: BaseHTTPRequestHandler) -> None:
        request.rfile.read(int(request.headers.get("Content-Length") or 0))
        fill(folder)
        body = (encode_token(answer) + done_event()).encode()
        request.send_response(200)
        request.send_header("Content-Type", "text/event-stream")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    return handle


def test_an_answer_the_full_disk_cannot_store_is_kept_with_the_reason(tmp_path: Path) -> None:
    with small_disk(tmp_path / "data") as data:
        history = History(data / "history.sqlite3", busy_timeout=0.3)
        request = request_for(history, "Tell me something.")
        with serve(filling_then_answering(data, "Something worth keeping.")) as url:
            generations = Generations(history, OpeaClient(url))
            generation = generations.start(request)
            assert generation is not None and generation.done.wait(30)
        assert generation.stored is None
        lost = generations.take_not_stored(request.conversation_id)
        assert lost is generation and lost.text == "Something worth keeping."
        assert lost.not_stored is not None and "is full" in lost.not_stored.one_line()
        assert generations.take_not_stored(request.conversation_id) is None  # told once
        assert generations.running() == []
        free_space(data / ".filler")
        assert [m.role for m in history.messages(request.conversation_id)] == ["user"]


class TitledMegaservice:
    """Answers questions with ``answer``; a title request (``app.titles``'s instruction)
    with ``title``, once ``release`` is set. It notes what the history held when the title
    was asked for, and whether the caller hung up on a title it was still waiting for."""

    def __init__(self, history: History, answer: str, title: str) -> None:
        self.history = history
        self.answer, self.title = answer, title
        self.release = threading.Event()
        self.title_asked = threading.Event()
        self.title_hung_up = threading.Event()
        self.stored_when_asked: list[str] = []

    def __call__(self, request: BaseHTTPRequestHandler) -> None:
        body = json.loads(request.rfile.read(int(request.headers["Content-Length"])))
        titling = body["messages"][0]["content"].startswith(INSTRUCTION)
        if titling:
            conversation = self.history.conversations()[0]
            self.stored_when_asked = [m.content for m in
                                      self.history.messages(conversation.id)]
            self.title_asked.set()
            if not self.release.wait(30):
                return
            # Readable with nothing to read: the caller has closed the connection.
            readable, _, _ = select.select([request.connection], [], [], 0.2)
            if readable and not request.connection.recv(1, socket.MSG_PEEK):
                self.title_hung_up.set()
                return
        request.send_response(200)
        request.send_header("Content-Type", "text/event-stream")
        request.end_headers()
        for piece in (self.title if titling else self.answer).split(" "):
            request.wfile.write(encode_token(piece + " ").encode())
            request.wfile.flush()
        request.wfile.write(done_event().encode())
        request.wfile.flush()
        request.close_connection = True


def title_of(history: History, conversation_id: int) -> str:
    conversation = history.conversation(conversation_id)
    assert conversation is not None
    return conversation.title


def title_settled(generations: Generations, conversation_id: int) -> None:
    deadline = time.monotonic() + 30
    while generations.title_pending(conversation_id):
        assert time.monotonic() < deadline, "the title request never ended"
        time.sleep(0.01)


def test_the_first_answer_gets_a_title_from_the_model_after_it_is_stored(
        history: History) -> None:
    service = TitledMegaservice(history, "Light split by raindrops.", '"Rainbows explained."')
    with serve(service) as url, OpeaClient(url) as client:
        generations = Generations(history, client, write_titles=True)
        request = request_for(history, "What is a rainbow, in short?")
        generation = generations.start(request)
        assert generation is not None and generation.done.wait(30)
        # The answer is stored and reported before the title is even asked for.
        assert generations.title_pending(request.conversation_id)
        assert title_of(history, request.conversation_id) == "What is a rainbow, in short?"
        service.release.set()
        title_settled(generations, request.conversation_id)
    assert service.stored_when_asked == ["What is a rainbow, in short?",
                                         "Light split by raindrops. "]
    assert title_of(history, request.conversation_id) == "Rainbows explained"


def test_a_title_gives_way_to_the_next_answer_and_the_first_line_stays(
        history: History) -> None:
    service = TitledMegaservice(history, "Sure.", "Never sent")
    with serve(service) as url, OpeaClient(url) as client:
        generations = Generations(history, client, write_titles=True)
        first = request_for(history, "Hello there?")
        generation = generations.start(first)
        assert generation is not None and generation.done.wait(30)
        assert service.title_asked.wait(30)
        # The next answer needs the model: the title request is dropped at once.
        second = request_for(history, "Another one?")
        following = generations.start(second)
        assert following is not None
        title_settled(generations, first.conversation_id)
        service.release.set()
        assert following.done.wait(30)
        assert service.title_hung_up.wait(10), "the title request was not cancelled"
    assert title_of(history, first.conversation_id) == "Hello there?"


@pytest.mark.parametrize("case", ["renamed", "unusable"])
def test_a_rename_meanwhile_or_an_unusable_reply_keeps_the_title(history: History,
                                                                 case: str) -> None:
    service = TitledMegaservice(history, "Sure.", "Better title" if case == "renamed"
                                else "* ...")
    with serve(service) as url, OpeaClient(url) as client:
        generations = Generations(history, client, write_titles=True)
        request = request_for(history, "Hello there?")
        generation = generations.start(request)
        assert generation is not None and generation.done.wait(30)
        assert service.title_asked.wait(30)
        if case == "renamed":
            history.rename(request.conversation_id, "Mine")
        service.release.set()
        title_settled(generations, request.conversation_id)
    assert title_of(history, request.conversation_id) == (
        "Mine" if case == "renamed" else "Hello there?")
