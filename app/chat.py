"""One answer, from the stored question to the stored reply.

What the model is sent (the conversation so far, fitted to its context window), the answer
as it streams in with its measurements (token count, time to first token, tokens per
second, all taken here on the client side), and what is kept: a complete answer, a partial
one marked as stopped, or a failure with its reason. The question is stored before anything
is sent, so no failure can lose it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

from app.cache import cache_key, cacheable
from app.history import AnswerMeta, AnswerStatus, Conversation, History, Message
from app.tokens import TokenCounter
from app.trimming import fit_to_context
from opea.client import ChatParams, OpeaClient
from opea.errors import OpeaChatError
from opea.sources import Source

MAX_INPUT_CHARS = 20_000
Clock = Callable[[], float]


def input_problem(text: str) -> str | None:
    """Why a typed message should not be sent, or None."""
    if not text.strip():
        return "Type a question first."
    if len(text) > MAX_INPUT_CHARS:
        return (f"That message is {len(text):,} characters; the limit is "
                f"{MAX_INPUT_CHARS:,}. Shorten it and send it again.")
    return None


def context_of(messages: list[Message]) -> list[dict[str, str]]:
    """The earlier messages the model is shown: questions with the answer the user saw
    (complete or stopped). A failed answer, the question it failed, and a question that
    never got an answer are left out, so one failure does not derail what follows."""
    result: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        if message.role != "user":
            continue
        answer = messages[index + 1] if index + 1 < len(messages) else None
        if answer is None or answer.role != "assistant" or answer.status is AnswerStatus.FAILED \
                or not answer.content:
            continue
        result += [{"role": "user", "content": message.content},
                   {"role": "assistant", "content": answer.content}]
    return result


@dataclass(frozen=True)
class Setup:
    """What the running stack and the user's settings say about how to ask."""

    model: str | None
    context_size: int
    count: TokenCounter
    use_cache: bool
    # Ask the megaservice to answer from the documents (True), not to (False), or leave it
    # to the megaservice (None: the chat profile, which has none).
    use_documents: bool | None = None


@dataclass(frozen=True)
class Request:
    conversation_id: int
    question: Message
    messages: list[dict[str, str]]
    params: ChatParams
    left_out: int
    model: str | None
    cache_key: str | None
    use_documents: bool | None = None


def prepare(history: History, conversation: Conversation, setup: Setup) -> Request:
    """The request that answers the conversation's last question.

    Raises ContextOverflowError when the question and system prompt alone do not fit.
    """
    stored = history.messages(conversation.id)
    if not stored or stored[-1].role != "user":
        raise ValueError("the conversation does not end with a question")
    question = stored[-1]
    params = conversation.params
    fitted = fit_to_context(conversation.system_prompt, context_of(stored[:-1]),
                            question.content, setup.context_size, params.max_tokens,
                            setup.count)
    # An answer from the documents depends on what is in the index: never from the cache.
    key = cache_key(setup.model, fitted.messages, params) \
        if setup.use_cache and cacheable(params) and not setup.use_documents else None
    return Request(conversation_id=conversation.id, question=question,
                   messages=fitted.messages, params=params, left_out=fitted.left_out,
                   model=setup.model, cache_key=key, use_documents=setup.use_documents)


class AnswerStream:
    """An answer as it arrives. ``updates()`` yields the text so far; closing the stream
    (``close()``) closes the HTTP stream, which stops generation upstream."""

    def __init__(self, pieces: Iterator[str], clock: Clock = time.monotonic,
                 cached: bool = False, cached_tokens: int | None = None):
        self._pieces = pieces
        self._clock = clock
        self._updates: Generator[str, None, None] | None = None
        self.cached = cached
        self._cached_tokens = cached_tokens
        self.text = ""
        self.pieces = 0
        self.error: OpeaChatError | None = None
        self.finished = False
        self.started: float | None = None
        self.first_token_at: float | None = None
        self.ended_at: float | None = None
        # Filled when the stream ends with the answer's sources (the rag profile).
        self.sources: list[Source] = []

    def updates(self, every: float = 0.05) -> Generator[str, None, None]:
        """The text so far, at most once per ``every`` seconds, and once at the end.
        A failure ends the updates and is kept in ``error``; the partial text stays."""
        self._updates = self._run(every)
        return self._updates

    def _run(self, every: float) -> Generator[str, None, None]:
        self.started = self._clock()
        shown = ""
        last_shown: float | None = None
        try:
            for piece in self._pieces:
                now = self._clock()
                if self.first_token_at is None:
                    self.first_token_at = now
                self.pieces += 1
                self.text += piece
                if last_shown is None or now - last_shown >= every:
                    last_shown = now
                    shown = self.text
                    yield shown
            self.finished = True
        except OpeaChatError as error:
            self.error = error
        finally:
            self.ended_at = self._clock()
        if self.text != shown:
            yield self.text

    def close(self) -> None:
        if self._updates is not None:
            self._updates.close()
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()
        if self.ended_at is None:
            self.ended_at = self._clock()

    @property
    def status(self) -> AnswerStatus:
        if self.error is not None:
            return AnswerStatus.FAILED
        return AnswerStatus.COMPLETE if self.finished else AnswerStatus.STOPPED

    @property
    def completion_tokens(self) -> int:
        """Tokens in the answer: one streamed piece per token, as llama.cpp, TGI and vLLM
        stream them (a cached answer keeps the count from when it was generated)."""
        if self.cached and self._cached_tokens is not None:
            return self._cached_tokens
        return self.pieces

    @property
    def first_token_seconds(self) -> float | None:
        if self.started is None or self.first_token_at is None:
            return None
        return self.first_token_at - self.started

    @property
    def tokens_per_second(self) -> float | None:
        """Generation speed after the first token (the first one includes reading the
        prompt); None when there is too little to measure or the answer was cached."""
        if self.cached or self.first_token_at is None or self.ended_at is None \
                or self.pieces < 2:
            return None
        elapsed = self.ended_at - self.first_token_at
        return (self.pieces - 1) / elapsed if elapsed > 0 else None


def start_answer(client: OpeaClient, history: History, request: Request,
                 clock: Clock = time.monotonic) -> AnswerStream:
    if request.cache_key is not None:
        hit = history.cached_answer(request.cache_key)
        if hit is not None:
            return AnswerStream(iter([hit.answer]), clock, cached=True,
                                cached_tokens=hit.completion_tokens)
    sources: list[Source] = []
    stream = AnswerStream(client.chat_stream(request.messages, request.params,
                                             use_documents=request.use_documents,
                                             on_sources=sources.extend), clock)
    stream.sources = sources
    return stream


def finish_answer(history: History, request: Request, stream: AnswerStream) -> Message:
    """Store the answer as it ended: complete, stopped (partial text kept) or failed."""
    stream.close()
    status = stream.status
    message = history.add_answer(request.conversation_id, stream.text, AnswerMeta(
        model=request.model, params=request.params, status=status,
        error=stream.error.one_line() if stream.error else None,
        completion_tokens=stream.completion_tokens,
        first_token_seconds=stream.first_token_seconds,
        tokens_per_second=stream.tokens_per_second, left_out=request.left_out,
        cached=stream.cached, sources=tuple(stream.sources)))
    if status is AnswerStatus.COMPLETE and request.cache_key and not stream.cached and stream.text:
        history.cache_answer(request.cache_key, stream.text, stream.completion_tokens)
    return message


def record_failure(history: History, conversation: Conversation, error: OpeaChatError,
                   model: str | None) -> Message:
    """An answer that could not even be asked for (the question does not fit, say)."""
    return history.add_answer(conversation.id, "", AnswerMeta(
        model=model, params=conversation.params, status=AnswerStatus.FAILED,
        error=error.one_line()))
