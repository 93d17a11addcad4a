"""A client for the OPEA ChatQnA megaservice: health, and chat with or without streaming.

Each failure becomes one exception from ``opea.errors``: unreachable, HTTP error (with
the body), timeout, or an empty answer. Only the TCP connect is retried (by httpcore, with
exponential backoff), so a request is never sent twice and nothing is retried once bytes of
an answer have flowed.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from opea.errors import (
    AnswerFailedError,
    ClientError,
    EmptyAnswerError,
    RequestTimeoutError,
    ServiceHTTPError,
    ServiceUnreachableError,
)
from opea.sources import SOURCES_EVENT, USE_DOCUMENTS_FIELD, Source, from_json, parse_sources
from opea.stack import CHATQNA_PATH
from opea.wire import StreamDecoder

Message = dict[str, str]


@contextmanager
def _request_errors(url: str, read_timeout: float) -> Iterator[None]:
    """httpx's failures of one request to ``url`` as opea-chat's errors."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise ServiceUnreachableError(
            f"cannot reach the OPEA megaservice at {url}",
            hint="is `opea-chat launch` running?",
        ) from exc
    except httpx.TimeoutException as exc:
        raise RequestTimeoutError(
            f"{url} sent nothing for {read_timeout:g} s",
            hint="the model may be overloaded; try again or raise the timeout",
        ) from exc
    except httpx.RemoteProtocolError as exc:
        raise ClientError(f"{url} closed the connection before the answer ended") from exc


def _end_of_stream(decoder: StreamDecoder, on_sources: SourcesCallback | None) -> None:
    """What a finished stream says besides its text, the same for both clients: its
    sources, then a failure reported by the service (an error event), else no text at all."""
    for name, data in decoder.events:
        if name == SOURCES_EVENT and on_sources is not None:
            on_sources(parse_sources(data))
    if decoder.error:
        raise AnswerFailedError(decoder.error)
    if not decoder.produced_text:
        raise _empty_stream()


def _empty_stream() -> EmptyAnswerError:
    return EmptyAnswerError(
        "the model returned an empty answer (the stream held only [DONE])",
        hint="the LLM service likely failed; check its log",
    )


@dataclass(frozen=True)
class ChatParams:
    max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.95


@dataclass(frozen=True)
class ChatResult:
    text: str
    usage: dict[str, Any] = field(default_factory=dict)
    # The passages a RAG answer was given (empty for a plain chat answer).
    sources: list[Source] = field(default_factory=list)


SourcesCallback = Callable[[list[Source]], None]


def as_messages(question_or_messages: str | Sequence[Message]) -> list[Message]:
    if isinstance(question_or_messages, str):
        return [{"role": "user", "content": question_or_messages}]
    return list(question_or_messages)


class OpeaClient:
    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        connect_retries: int = 3,
        tls: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._connect_retries = connect_retries
        # Kept for ``chat_stream_async``'s own connection: same CA bundle, same headers.
        self._tls = tls
        self._headers = dict(headers or {})
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            # ``tls``: a remote endpoint's CA bundle; certificates are always verified.
            transport=httpx.HTTPTransport(retries=connect_retries, verify=tls or True),
            headers=dict(headers or {}),
            # Local services, or an endpoint named explicitly: never a system proxy.
            trust_env=False,
        )

    def __enter__(self) -> OpeaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _errors(self, path: str) -> AbstractContextManager[None]:
        return _request_errors(self.base_url + path, self.read_timeout)

    def _check(self, response: httpx.Response) -> None:
        if response.is_error:
            response.read()
            raise ServiceHTTPError(response.status_code, response.text, str(response.url))

    def health(self) -> dict[str, Any]:
        path = "/v1/health_check"
        with self._errors(path):
            response = self._http.get(path)
            self._check(response)
            body: dict[str, Any] = response.json()
            return body

    def _body(self, messages: str | Sequence[Message], params: ChatParams | None,
              stream: bool, use_documents: bool | None) -> dict[str, Any]:
        body = {"messages": as_messages(messages), "stream": stream,
                **asdict(params or ChatParams())}
        if use_documents is not None:
            body[USE_DOCUMENTS_FIELD] = use_documents
        return body

    def chat(self, messages: str | Sequence[Message], params: ChatParams | None = None,
             *, use_documents: bool | None = None) -> ChatResult:
        """``use_documents``: False answers from the model alone in the rag profile; None
        leaves it to the megaservice (documents where it has them)."""
        body_sent = self._body(messages, params, False, use_documents)
        with self._errors(CHATQNA_PATH):
            response = self._http.post(CHATQNA_PATH, json=body_sent)
            self._check(response)
            try:
                body = response.json()
                text = body["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise ClientError(
                    f"{self.base_url}{CHATQNA_PATH} answered something that is not a chat "
                    f"completion: {response.text[:200]}"
                ) from exc
        if not text:
            raise EmptyAnswerError("the model returned an empty answer",
                                   hint="check the LLM service's log")
        sources = body.get("sources") if isinstance(body, dict) else None
        return ChatResult(text=text, usage=body.get("usage") or {},
                          sources=[from_json(item) for item in sources or []
                                   if isinstance(item, dict)])

    def chat_stream(self, messages: str | Sequence[Message], params: ChatParams | None = None,
                    *, use_documents: bool | None = None,
                    on_sources: SourcesCallback | None = None
                    ) -> Generator[str, None, None]:
        """Yield the answer's text as it arrives. Closing the generator closes the HTTP
        stream, which is how a caller stops generation upstream. ``on_sources`` gets the
        answer's sources when the stream ends with them (the rag profile)."""
        decoder = StreamDecoder()
        with self._errors(CHATQNA_PATH), self._http.stream(
            "POST", CHATQNA_PATH, json=self._body(messages, params, True, use_documents)
        ) as response:
            self._check(response)
            for line in response.iter_lines():
                if text := decoder.feed_line(line):
                    yield text
                # Past [DONE] only the sources event may follow; the stream then ends.
            if tail := decoder.finish():
                yield tail
        _end_of_stream(decoder, on_sources)

    async def chat_stream_async(self, messages: str | Sequence[Message],
                                params: ChatParams | None = None,
                                *, use_documents: bool | None = None,
                                on_sources: SourcesCallback | None = None
                                ) -> AsyncGenerator[str, None]:
        """``chat_stream`` for an asyncio task, over a connection of its own: cancelling
        the task closes the connection at once, even while no token has come yet (a
        blocking read cannot be interrupted that way), which stops generation upstream.
        ``use_documents`` and ``on_sources`` as for ``chat_stream``."""
        decoder = StreamDecoder()
        async with httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(self.read_timeout, connect=self._connect_timeout),
            transport=httpx.AsyncHTTPTransport(retries=self._connect_retries,
                                               verify=self._tls or True),
            headers=self._headers,
            trust_env=False,
        ) as http:
            with self._errors(CHATQNA_PATH):
                async with http.stream("POST", CHATQNA_PATH,
                                       json=self._body(messages, params, True,
                                                       use_documents)) as response:
                    if response.is_error:
                        await response.aread()
                        raise ServiceHTTPError(response.status_code, response.text,
                                               str(response.url))
                    async for line in response.aiter_lines():
                        if text := decoder.feed_line(line):
                            yield text
                        # Past [DONE] only the sources event may follow; the stream ends.
                    if tail := decoder.finish():
                        yield tail
        _end_of_stream(decoder, on_sources)
