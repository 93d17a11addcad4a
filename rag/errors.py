"""The RAG services' errors, under the project's one base (``opea.errors.OpeaChatError``)."""

from __future__ import annotations

from opea.errors import OpeaChatError


class DocumentError(OpeaChatError):
    """A document or request cannot be indexed or answered (unreadable, encrypted, no text,
    too large, unsupported type, bad parameters). ``status`` is the HTTP status the RAG
    services answer it with."""

    def __init__(self, message: str, *, hint: str | None = None, status: int = 400):
        super().__init__(message, hint=hint)
        self.status = status
