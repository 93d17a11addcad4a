"""One chat turn without Streamlit: what is sent, what is measured, what is stored; then
the same against the real llama.cpp server and OPEA megaservice."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from app import chat
from app.errors import ContextOverflowError
from app.history import AnswerMeta, AnswerStatus, History, Message
from app.tokens import estimate_tokens, gguf_counter
from launcher.ports import pick_free_port
from opea.client import ChatParams, OpeaClient
from opea.errors import ClientError, ServiceUnreachableError
from tests.services import llm_server, megaservice

ZERO = ChatParams(max_tokens=32, temperature=0.0, top_p=1.0)


class Clock:
    """Time that moves only when told: measurements become exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ticking(clock: Clock, pieces: list[tuple[float, str]]) -> Iterator[str]:
    for delay, piece in pieces:
        clock.now += delay
        yield piece


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / "history.sqlite3")


def message(role: str, content: str,
            status: AnswerStatus = AnswerStatus.COMPLETE) -> Message:
    return Message(id=0, conversation_id=0, role=role, content=content, created_at=0.0,
                   status=status)


def test_input_that_is_empty_or_too_long_is_refused_with_the_limit() -> None:
    assert chat.input_problem("   \n\t") == "Type a question first."
    problem = chat.input_problem("x" * 100_000)
    assert problem is not None and "100,000 characters" in problem and "20,000" in problem
    assert chat.input_problem("x" * chat.MAX_INPUT_CHARS) is None


def test_the_model_sees_answered_turns_only() -> None:
    stored = [
        message("user", "q1"), message("assistant", "a1"),
        message("user", "q2"), message("assistant", "", AnswerStatus.FAILED),  # failed: left out
        message("user", "q3"), message("assistant", "partial", AnswerStatus.STOPPED),  # kept
        message("user", "q4"),  # never answered (the app was killed): left out
        message("user", "q5"), message("assistant", "a5"),
    ]
    assert chat.context_of(stored) == [
        {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q3"}, {"role": "assistant", "content": "partial"},
        {"role": "user", "content": "q5"}, {"role": "assistant", "content": "a5"},
    ]


def test_measurements_of_a_streamed_answer() -> None:
    clock = Clock()
    stream = chat.AnswerStream(ticking(clock, [(0.5, "Hel"), (0.1, "lo"), (0.1, " there"),
                                               (0.1, "!")]), clock)
    shown = list(stream.updates(every=0.15))
    assert shown == ["Hel", "Hello there", "Hello there!"]  # throttled, last always shown
    assert stream.status == "complete" and stream.text == "Hello there!"
    assert stream.completion_tokens == 4
    assert stream.first_token_seconds == pytest.approx(0.5)
    assert stream.tokens_per_second == pytest.approx(3 / 0.3)


def test_closing_mid_answer_stops_the_source_and_keeps_the_partial_text() -> None:
    closed = []

    def source() -> Generator[str, None, None]:
        try:
            yield from ["one ", "two ", "three"]
        finally:
            closed.append(True)

    stream = chat.AnswerStream(source())
    updates = stream.updates(every=0)
    assert next(updates) == "one "
    assert next(updates) == "one two "
    stream.close()
    assert closed == [True]  # the HTTP stream's generator is closed: generation stops
    assert (stream.status, stream.text) == ("stopped", "one two ")


def test_a_failure_mid_answer_keeps_the_text_so_far_and_the_reason() -> None:
    def source() -> Iterator[str]:
        yield "half an "
        raise ClientError("the stream broke")

    stream = chat.AnswerStream(source())
    assert list(stream.updates(every=0)) == ["half an "]
    assert stream.status == "failed" and stream.text == "half an "
    assert stream.error is not None and stream.error.one_line() == "the stream broke"


def ask(history: History, question: str, params: ChatParams = ZERO, system: str = ""
        ) -> int:
    conversation = history.create_conversation(system_prompt=system, params=params)
    history.add_question(conversation.id, question, "m", params)
    return conversation.id


def setup(context: int = 4096, cache: bool = True) -> chat.Setup:
    return chat.Setup(model="m", context_size=context, count=estimate_tokens, use_cache=cache)


def test_each_ending_is_stored_with_its_status_and_measurements(history: History) -> None:
    conversation_id = ask(history, "q")
    conversation = history.conversation(conversation_id)
    assert conversation is not None
    request = chat.prepare(history, conversation, setup(cache=False))
    clock = Clock()
    stream = chat.AnswerStream(ticking(clock, [(0.2, "a"), (0.1, "b"), (0.1, "c")]), clock)
    updates = stream.updates(every=0)
    next(updates)
    next(updates)
    stored = chat.finish_answer(history, request, stream)  # closed after two pieces
    assert (stored.status, stored.content, stored.completion_tokens) == ("stopped", "ab", 2)
    assert stored.first_token_seconds == pytest.approx(0.2)
    assert stored.model == "m" and stored.params == ZERO
    assert history.messages(conversation_id)[-1] == stored


def test_a_question_too_long_for_the_context_is_kept_and_its_failure_recorded(
        history: History) -> None:
    conversation_id = ask(history, "w " * 3000)
    conversation = history.conversation(conversation_id)
    assert conversation is not None
    with pytest.raises(ContextOverflowError) as caught:
        chat.prepare(history, conversation, setup(context=1024))
    chat.record_failure(history, conversation, caught.value, "m")
    question, failure = history.messages(conversation_id)
    assert question.content == "w " * 3000
    assert failure.status == "failed" and "1,024-token context" in (failure.error or "")


def test_trimming_is_applied_and_the_left_out_turns_are_stored(history: History) -> None:
    conversation = history.create_conversation(params=ZERO)
    for number in range(30):
        history.add_question(conversation.id, f"question {number} " + "w " * 40, None, ZERO)
        history.add_answer(conversation.id, f"answer {number} " + "w " * 40, AnswerMeta())
    history.add_question(conversation.id, "last?", None, ZERO)
    request = chat.prepare(history, conversation, setup(context=512))
    assert request.left_out > 0 and request.messages[-1]["content"] == "last?"
    stored = chat.finish_answer(history, request, chat.AnswerStream(iter(["ok"])))
    assert stored.left_out == request.left_out


@pytest.fixture(scope="module")
def stack(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("chat-logs")
    with llm_server(smollm2, logs, context_size=512) as llm, megaservice(llm, logs) as url:
        yield url




@pytest.mark.integration
def test_a_long_conversation_is_trimmed_so_the_real_model_still_answers(
        stack: str, history: History, smollm2: Path) -> None:
    conversation = history.create_conversation(system_prompt="You are terse.", params=ZERO)
    for number in range(12):
        history.add_question(conversation.id, f"Tell me fact {number} about the sea. " * 4,
                             None, ZERO)
        history.add_answer(conversation.id, "The sea is large and deep. " * 8, AnswerMeta())
    history.add_question(conversation.id, "What colour is the sky?", None, ZERO)
    count = gguf_counter(smollm2)
    assert count is not None
    request = chat.prepare(history, conversation, chat.Setup("smollm2-135m", 512, count, False))
    assert request.left_out > 0
    with OpeaClient(stack, read_timeout=120) as client:
        # Untrimmed, this conversation overflows the server's 512-token context.
        with pytest.raises(ClientError):
            client.chat([{"role": "system", "content": "You are terse."},
                         *chat.context_of(history.messages(conversation.id)[:-1]),
                         {"role": "user", "content": "What colour is the sky?"}], ZERO)
        stream = chat.start_answer(client, history, request)
        list(stream.updates())
        stored = chat.finish_answer(history, request, stream)
    assert stored.status == "complete" and stored.content.strip()
    assert stored.left_out == request.left_out
    assert stored.completion_tokens and stored.first_token_seconds is not None


@pytest.mark.integration
def test_identical_temperature_zero_questions_are_answered_from_the_cache(
        stack: str, history: History) -> None:
    with OpeaClient(stack, read_timeout=120) as client:
        answers = []
        for _ in range(2):
            conversation_id = ask(history, "Name a fruit.")
            conversation = history.conversation(conversation_id)
            assert conversation is not None
            request = chat.prepare(history, conversation, setup())
            stream = chat.start_answer(client, history, request)
            list(stream.updates())
            answers.append(chat.finish_answer(history, request, stream))
        first, second = answers
        assert not first.cached and second.cached
        assert second.content == first.content
        assert second.completion_tokens == first.completion_tokens
        # Not at a temperature above 0, and not when the cache is switched off.
        for params, cache in ((ChatParams(max_tokens=16, temperature=0.7), True), (ZERO, False)):
            conversation_id = ask(history, "Name a fruit.", params)
            conversation = history.conversation(conversation_id)
            assert conversation is not None
            request = chat.prepare(history, conversation, setup(cache=cache))
            assert request.cache_key is None
            stream = chat.start_answer(client, history, request)
            list(stream.updates())
            assert not chat.finish_answer(history, request, stream).cached


@pytest.mark.integration
def test_a_megaservice_that_is_down_fails_the_answer_and_keeps_the_question(
        history: History) -> None:
    conversation_id = ask(history, "Anyone there?")
    conversation = history.conversation(conversation_id)
    assert conversation is not None
    with OpeaClient(f"http://127.0.0.1:{pick_free_port()}", connect_retries=0) as client:
        request = chat.prepare(history, conversation, setup())
        stream = chat.start_answer(client, history, request)
        assert list(stream.updates()) == []
        stored = chat.finish_answer(history, request, stream)
    assert isinstance(stream.error, ServiceUnreachableError)
    assert stored.status == "failed" and "opea-chat launch" in (stored.error or "")
    assert history.messages(conversation_id)[0].content == "Anyone there?"
