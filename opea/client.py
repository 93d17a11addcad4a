"""A client for the OPEA ChatQnA megaservice: health, and chat with or without streaming.

Each failure becomes one exception from ``opea.errors``: unreachable, HTTP error (with
the body), timeout, or an empty answer. Only the TCP connect is retried (by httpcore, with
exponential backoff), so a request is never sent twice and nothing is retried once bytes of
an answer have flowed.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
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
from opea.stack import CHATQNA_PATH
from opea.wire import StreamDecoder

Message = dict[str, str]


@dataclass(frozen=True)
class ChatParams:
    max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.95


@dataclass(frozen=True)
class ChatResult:
    text: str
    usage: dict[str, Any] = field(default_factory=dict)


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
    ):
        self.base_url = base_url.rstrip("/")
        self.read_timeout = read_timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            transport=httpx.HTTPTransport(retries=connect_retries),
            # Local services only: a system proxy must never see these requests.
            trust_env=False,
        )

    def __enter__(self) -> OpeaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @contextmanager
    def _errors(self, path: str) -> Iterator[None]:
        url = self.base_url + path
        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServiceUnreachableError(
                f"cannot reach the OPEA megaservice at {url}",
                hint="is `opea-chat launch` running?",
            ) from exc
        except httpx.TimeoutException as exc:
            raise RequestTimeoutError(
                f"{url} sent nothing for {self.read_timeout:g} s",
                hint="the model may be overloaded; try again or raise the timeout",
            ) from exc
        except httpx.RemoteProtocolError as exc:
            raise ClientError(f"{url} closed the connection before the answer ended") from exc

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
              stream: bool) -> dict[str, Any]:
        return {"messages": as_messages(messages), "stream": stream,
                **asdict(params or ChatParams())}

    def chat(self, messages: str | Sequence[Message], params: ChatParams | None = None
             ) -> ChatResult:
        with self._errors(CHATQNA_PATH):
            response = self._http.post(CHATQNA_PATH, json=self._body(messages, params, False))
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
        return ChatResult(text=text, usage=body.get("usage") or {})

    def chat_stream(self, messages: str | Sequence[Message], params: ChatParams | None = None
                    ) -> Generator[str, None, None]:
        """Yield the answer's text as it arrives. Closing the generator closes the HTTP
        stream, which is how a caller stops generation upstream."""
        decoder = StreamDecoder()
        got_text = False
        with self._errors(CHATQNA_PATH), self._http.stream(
            "POST", CHATQNA_PATH, json=self._body(messages, params, True)
        ) as response:
            self._check(response)
            for line in response.iter_lines():
                text = decoder.feed_line(line)
                if text:
                    got_text = True
                    yield text
                if decoder.done:
                    break
            if tail := decoder.finish():
                got_text = True
                yield tail
        if decoder.error:
            raise AnswerFailedError(decoder.error)
        if not got_text:
            raise EmptyAnswerError(
                "the model returned an empty answer (the stream held only [DONE])",
                hint="the LLM service likely failed; check its log",
            )
