"""The sources of a RAG answer: which document passages the answer was given, and how they
travel to clients.

ChatQnA shows no sources. opea-chat's megaservice adds them without breaking ChatQnA's
wire format:

- non-streaming: a ``sources`` list beside ``choices`` in the chat completion;
- streaming: one extra server-sent event *after* ``data: [DONE]``::

      event: sources
      data: {"sources": [{"file": "report.pdf", "page": 3, ...}]}

  A plain ChatQnA client stops reading at ``[DONE]`` (or ignores a named event), so it
  never sees it.

Standard library only: the megaservice imports this inside OPEA's chatqna image.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

SOURCES_EVENT = "sources"
# The per-request switch: ``"use_documents": false`` answers from the model alone.
USE_DOCUMENTS_FIELD = "use_documents"

# Where OPEA's and our retrievers put a passage's origin in its metadata, best first.
_FILE_KEYS = ("file_name", "source", "file", "filename", "doc_name", "file_path")
_PAGE_KEYS = ("page", "page_number")
_HEADING_KEYS = ("heading", "section", "title")


@dataclass(frozen=True)
class Source:
    """One retrieved passage: the document, where in it, the text, and its similarity."""

    file: str
    passage: str
    score: float | None = None
    page: int | None = None
    heading: str | None = None

    def where(self) -> str:
        """``report.pdf, page 3`` / ``notes.md, "Setup"`` / ``notes.txt``."""
        parts = [self.file]
        if self.page is not None:
            parts.append(f"page {self.page}")
        if self.heading:
            parts.append(f"“{self.heading}”")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _first(mapping: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = mapping.get(key)
        if value not in (None, ""):
            return value
    return None


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _as_float(value: Any) -> float | None:
    try:
        return round(float(value), 4) if value is not None else None
    except (TypeError, ValueError):
        return None


def from_retrieved(doc: dict[str, Any]) -> Source:
    """A Source from one entry of an OPEA retriever's ``retrieved_docs``."""
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    both = {**metadata, **{k: v for k, v in doc.items() if k != "metadata"}}
    file = str(_first(both, _FILE_KEYS) or "unknown document")
    # A path from a container or another machine: the name is what a user recognises.
    file = file.replace("\\", "/").rsplit("/", 1)[-1]
    heading = _first(both, _HEADING_KEYS)
    return Source(file=file, passage=str(doc.get("text") or ""),
                  score=_as_float(_first(both, ("score", "similarity", "relevance_score"))),
                  page=_as_int(_first(both, _PAGE_KEYS)),
                  heading=str(heading) if heading is not None else None)


def from_json(item: dict[str, Any]) -> Source:
    """A Source as the megaservice sent it (unknown fields ignored, missing ones empty)."""
    return Source(file=str(item.get("file") or "unknown document"),
                  passage=str(item.get("passage") or ""),
                  score=_as_float(item.get("score")), page=_as_int(item.get("page")),
                  heading=item.get("heading") or None)


def sources_event(sources: list[Source]) -> str:
    """The named event that follows ``data: [DONE]`` in a streamed RAG answer."""
    payload = json.dumps({"sources": [s.to_json() for s in sources]}, ensure_ascii=False)
    return f"event: {SOURCES_EVENT}\ndata: {payload}\n\n"


def parse_sources(data: str) -> list[Source]:
    """The sources in a ``sources`` event's data; [] for anything unreadable."""
    try:
        items = json.loads(data).get("sources", [])
    except (ValueError, AttributeError):
        return []
    return [from_json(item) for item in items if isinstance(item, dict)]
