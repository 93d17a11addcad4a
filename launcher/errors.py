"""The one hierarchy of errors that opea-chat reports to its users.

Every error a user can cause or meet (bad flag, missing model, a service that will not
start, a chat that fails) is an ``OpeaChatError``. ``launcher.cli`` is the one place that
turns them into an ``Error: ...`` line and an exit code; the Streamlit app shows the same
message in the page. Anything else that escapes is a bug and keeps its traceback.
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


# Settings and input -------------------------------------------------------------------


class ConfigError(OpeaChatError):
    """A setting (config.toml, OPEA_CHAT_* variable or flag) has a bad name or value."""

    exit_code = 2


class ModelError(OpeaChatError):
    """The model asked for cannot be found, fetched or served."""


class PortInUseError(OpeaChatError):
    """A port the user asked for is taken by another program."""


class NotEnoughMemoryError(ModelError):
    """The model needs more memory (GPU or RAM) than the machine has free."""


class DiskSpaceError(OpeaChatError):
    """A download (model or images) would not fit on the disk it goes to."""


# The machine: Docker, GPUs, images -----------------------------------------------------


class DockerUnavailableError(OpeaChatError):
    """The Docker engine cannot be reached."""


class GpuUnavailableError(OpeaChatError):
    """A service needs an NVIDIA GPU that Docker cannot give it."""


class ImageError(OpeaChatError):
    """A container image is missing, cannot be pulled, or the pull was refused."""


class CleanupError(OpeaChatError):
    """Something opea-chat started could not be removed at the end."""


class RemoteEndpointError(OpeaChatError):
    """The remote runtime's megaservice cannot be reached, trusted or used."""


class ControlError(OpeaChatError):
    """The running launcher did not answer, or refused, a control request."""


# Starting and running services --------------------------------------------------------


class ServiceStartError(OpeaChatError):
    """A service did not become healthy: it exited, or its start timed out."""

    def __init__(self, service: str, message: str, *, hint: str | None = None,
                 details: str | None = None):
        super().__init__(message, hint=hint, details=details)
        self.service = service


class ServiceExitedError(ServiceStartError):
    """A service's process or container ended while it was starting or running."""


class StartTimeoutError(ServiceStartError):
    """A service was still not healthy when its start timeout ran out."""


class Interrupted(OpeaChatError):
    """The user asked to stop (Ctrl+C, SIGTERM, SIGHUP) before the stack was ready."""

    exit_code = 130


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


class EmptyAnswerError(ClientError):
    """The stream ended without any text.

    OPEA's megaservice does not check the LLM's HTTP status on its streaming path: when the
    LLM fails it answers 200 with only ``data: [DONE]``. This turns that silence into an error.
    """


# The chat app: its history file, imports, and what fits the model --------------------


class HistoryError(OpeaChatError):
    """The chat history database cannot be used; ``path`` is the file."""

    def __init__(self, message: str, path: str, *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.path = path


class HistoryLockedError(HistoryError):
    """Another program holds a lock on the history database for too long."""


class HistoryCorruptError(HistoryError):
    """The history file is not a readable SQLite database (or fails its integrity check)."""


class HistoryTooNewError(HistoryError):
    """The history was written by a newer opea-chat whose schema this one does not know."""


class ImportFileError(OpeaChatError):
    """A file given to import is not an opea-chat export, or is damaged."""


class ContextOverflowError(OpeaChatError):
    """The system prompt and the new question alone do not fit the model's context window."""
