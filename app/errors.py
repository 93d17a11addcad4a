"""The chat app's errors: its history file, imported files, and what fits the model."""

from __future__ import annotations

from opea.errors import OpeaChatError


class HistoryError(OpeaChatError):
    """The chat history database cannot be used; ``path`` is the file."""

    def __init__(self, message: str, path: str, *, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.path = path


class HistoryLockedError(HistoryError):
    """Another program holds a lock on the history database for too long."""


class HistoryCorruptError(HistoryError):
    """The history file is not a readable SQLite database (or fails its integrity check)."""


class HistoryDiskError(HistoryError):
    """The disk holding the history is full or fails to read or write it. The file itself
    is fine: never a reason to set it aside and start a fresh one."""

    def __init__(self, message: str, path: str, *, free_bytes: int | None,
                 hint: str | None = None):
        super().__init__(message, path, hint=hint)
        self.free_bytes = free_bytes


class HistoryTooNewError(HistoryError):
    """The history was written by a newer opea-chat whose schema this one does not know."""


class ImportFileError(OpeaChatError):
    """A file given to import is not an opea-chat export, or is damaged."""


class ContextOverflowError(OpeaChatError):
    """The system prompt and the new question alone do not fit the model's context window."""
