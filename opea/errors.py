"""The base of every error opea-chat reports to its users, and the OPEA client's own errors.

Every error a user can cause or meet (bad flag, missing model, a service that will not
start, a chat that fails) is an ``OpeaChatError``. Each package keeps its own errors beside
its domain, all under this base: the client's here, the model files' in ``models.errors``,
the chat app's in ``app.errors``, the launcher's in ``launcher.errors``. The base lives at
the bottom (``opea`` imports no other package of the project) so that every package can use
it. ``launcher.cli`` is the one place that turns them into an ``Error: ...`` line and an exit
code; the Streamlit app shows the same message in the page. Anything else that escapes is a
bug and keeps its traceback.
"""

from __future__ import annotations


class OpeaChatError(Exception):
    """Base class: ``message`` is one line saying what went wrong.

    ``hint`` says what to do about it; ``details`` holds extra lines worth showing
    (a service's log tail, say).
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, details: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def one_line(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message

    def __str__(self) -> str:
        return self.one_line()


# Talking to the OPEA megaservice ------------------------------------------------------


class ClientError(OpeaChatError):
    """A request to an OPEA service failed."""


class ServiceUnreachableError(ClientError):
    """No connection could be made (after bounded retries)."""


class ServiceHTTPError(ClientError):
    """The service answered with an HTTP error status; ``body`` is what it said."""

    def __init__(self, status_code: int, body: str, url: str):
        text = " ".join(body.split())[:300] or "(empty body)"
        super().__init__(f"{url} answered HTTP {status_code}: {text}")
        self.status_code = status_code
        self.body = body
        self.url = url


class RequestTimeoutError(ClientError):
    """The service stopped answering for longer than the read timeout."""


class AnswerFailedError(ClientError):
    """The service began answering, then reported a failure as the stream's error event."""


class EmptyAnswerError(ClientError):
    """The stream ended without any text.

    OPEA's megaservice does not check the LLM's HTTP status on its streaming path: when the
    LLM fails it answers 200 with only ``data: [DONE]``. This turns that silence into an error.
    """


class DocumentRefusedError(ClientError):
    """The dataprep service refused a document (corrupt, encrypted or image-only PDF, empty,
    unsupported type, over the size limit) or a name to delete; the message is its reason.
    ``status`` is its HTTP status."""

    def __init__(self, message: str, *, hint: str | None = None, status: int = 400):
        super().__init__(message, hint=hint)
        self.status = status
