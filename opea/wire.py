"""ChatQnA's streaming wire format, both ways.

The megaservice streams ``text/event-stream`` with one event per token whose payload is
Python's ``repr`` of the token's UTF-8 bytes::

    data: b'Hello'
    data: b' \\xe2\\x80\\x94'
    data: [DONE]

Decoding uses ``ast.literal_eval`` (never ``eval``) and an incremental UTF-8 decoder, since
a multi-byte character can be split across two events.

A failure after the stream has begun (HTTP 200 is already sent) ends it with an error event
before ``[DONE]``; its data is JSON with a one-line ``message`` (docs/api.md)::

    event: error
    data: {"message": "the conversation needs 831 tokens; the model's context holds 512"}
"""

from __future__ import annotations

import ast
import codecs
import json
import logging
import re
from collections.abc import Iterable, Iterator

DONE = "[DONE]"
_log = logging.getLogger(__name__)


def encode_token(text: str) -> str:
    """One ChatQnA event for a piece of text."""
    return f"data: {text.encode('utf-8')!r}\n\n"


def done_event() -> str:
    return f"data: {DONE}\n\n"


ERROR_EVENT = "error"
_CONTEXT_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


def error_event(message: str) -> str:
    """The event that ends a stream which failed after it began."""
    return f"event: {ERROR_EVENT}\ndata: {json.dumps({'message': message})}\n\n"


def llm_error_message(error: object) -> str:
    """One line for an error the LLM server reported in its stream (llama.cpp puts
    ``{"error": {"message": ...}}`` or a bare string there)."""
    text = str(error.get("message", error) if isinstance(error, dict) else error)
    if match := _CONTEXT_OVERFLOW.search(text):
        return (f"the conversation needs {match[1]} tokens but the model's context holds "
                f"{match[2]}; start a new conversation or launch with a larger --context-size")
    return "the LLM server failed while answering: " + " ".join(text.split())[:300]


def _payload_bytes(payload: str) -> bytes:
    """The bytes an event carries; tolerant of the non-repr forms other OPEA paths emit."""
    if payload[:2] in ("b'", 'b"'):
        try:
            value = ast.literal_eval(payload)
        except (ValueError, SyntaxError):
            # OPEA's orchestrator also emits "data: b'" + text + "'" without escaping.
            return payload[2:-1].encode("utf-8")
        if isinstance(value, bytes):
            return value
    return payload.encode("utf-8")


class StreamDecoder:
    """Turns the lines of a ChatQnA stream into text, one line at a time.

    Named events (``event: NAME`` before ``data:``, as opea-chat's sources after
    ``[DONE]``) are not text: their data is kept in ``events`` as ``(NAME, data)``.
    """

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.done = False
        self._event: str | None = None
        self.events: list[tuple[str, str]] = []
        # The message of an error event, once one arrived.
        self.error: str | None = None
        # Whether any answer text came out: a stream that ends without is an empty answer.
        self.produced_text = False

    def feed_line(self, line: str) -> str:
        return self._noted(self._decode(line))

    def finish(self) -> str:
        return self._noted(self._utf8.decode(b"", final=True))

    def _noted(self, text: str) -> str:
        self.produced_text = self.produced_text or bool(text)
        return text

    def _decode(self, line: str) -> str:
        line = line.rstrip("\r\n")
        if not line:
            self._event = None  # an event ends at a blank line
            return ""
        if line.startswith("event:"):
            self._event = line[6:].strip() or None
            return ""
        if not line.startswith("data:"):
            return ""  # comments (":"), other SSE fields
        payload = line[5:].removeprefix(" ")
        if self._event == ERROR_EVENT:
            try:
                self.error = str(json.loads(payload)["message"])
            except (ValueError, KeyError, TypeError):
                self.error = payload.strip() or "the service failed while answering"
            return ""
        if self._event not in (None, "message"):
            self.events.append((self._event or "", payload))
            return ""
        if self.done:
            return ""
        if payload.strip() == DONE:
            self.done = True
            return self._utf8.decode(b"", final=True)
        return self._utf8.decode(_payload_bytes(payload))


class OpenAIReframer:
    """Re-frames an OpenAI chat-completions stream as ChatQnA events, chunk by chunk.

    Incremental (bytes in, events out) so the same logic serves a synchronous iterator and
    the megaservice's asynchronous relay. TCP may merge or split events anywhere. A body that
    is not a stream (an error JSON from the LLM server) yields no token and is logged: the
    client then reports an empty answer instead of showing JSON as the answer.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self.done = False

    def feed(self, chunk: bytes) -> list[str]:
        if self.done:
            return []
        self._buffer += chunk.replace(b"\r\n", b"\n")
        events = []
        while b"\n\n" in self._buffer and not self.done:
            event, self._buffer = self._buffer.split(b"\n\n", 1)
            events += self._event(event.decode("utf-8", errors="replace"))
        return events

    def finish(self) -> list[str]:
        """The events still owed at the end of the upstream body, ending with [DONE]."""
        if self.done:
            return []
        events = []
        if self._buffer.strip():
            events += self._event(self._buffer.decode("utf-8", errors="replace"))
            self._buffer = b""
        if not self.done:
            # The LLM server ended its stream without [DONE]: it failed after it began.
            self.done = True
            events += [error_event("the LLM server stopped before the answer was complete; "
                                   "check its log (`opea-chat logs llm`)"), done_event()]
        return events

    def _event(self, event: str) -> list[str]:
        data = "\n".join(
            line[5:].strip() for line in event.split("\n") if line.startswith("data:")
        )
        if not data:
            if event.strip() and not event.lstrip().startswith(":"):
                _log.error("LLM server answered instead of streaming: %s", event[:500])
                try:
                    error = json.loads(event)["error"]
                except (ValueError, KeyError, TypeError):
                    return []
                self.done = True
                return [error_event(llm_error_message(error)), done_event()]
            return []
        if data == DONE:
            self.done = True
            return [done_event()]
        try:
            message = json.loads(data)
            if isinstance(message, dict) and "error" in message:
                self.done = True
                return [error_event(llm_error_message(message["error"])), done_event()]
            content = message["choices"][0]["delta"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            _log.error("unexpected event from the LLM server: %s", data[:500])
            return []
        return [encode_token(content)] if content else []


def openai_stream_to_chatqna(chunks: Iterable[bytes]) -> Iterator[str]:
    """Re-frame a whole OpenAI chat-completions stream as ChatQnA events."""
    reframer = OpenAIReframer()
    for chunk in chunks:
        yield from reframer.feed(chunk)
        if reframer.done:
            return
    yield from reframer.finish()
