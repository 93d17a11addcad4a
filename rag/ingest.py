"""Ingesting one file into the index: parse, split, embed (through the embedding service,
as OPEA's dataprep calls TEI), store; with the progress of the file being ingested."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from opea.errors import OpeaChatError
from rag.chunks import split_sections
from rag.documents import parse
from rag.errors import DocumentError
from rag.store import Store

# Texts per request to the embedding service: small enough that progress moves often.
EMBED_BATCH = 32

Embed = Callable[[list[str]], "np.ndarray[Any, np.dtype[np.float32]]"]


@dataclass
class Progress:
    active: bool = False
    file: str | None = None
    stage: str | None = None
    done: int = 0
    total: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, **values: Any) -> None:
        with self.lock:
            for key, value in values.items():
                setattr(self, key, value)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"active": self.active, "file": self.file, "stage": self.stage,
                    "done": self.done, "total": self.total}


def http_embedder(url: str, timeout: float = 300.0) -> Embed:
    """Embeds through TEI's ``POST /embed`` at ``url``."""
    client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, trust_env=False)

    def embed(texts: list[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        try:
            response = client.post("/embed", json={"inputs": texts})
        except httpx.HTTPError as exc:
            raise OpeaChatError(f"the embedding service at {url} did not answer ({exc})",
                                hint="check that it runs: opea-chat status") from exc
        if response.status_code != 200:
            raise OpeaChatError(f"the embedding service answered {response.status_code}: "
                                f"{response.text[:200]}")
        return np.asarray(response.json(), dtype=np.float32)

    return embed


@dataclass(frozen=True)
class Ingested:
    name: str
    chunks: int
    bytes: int
    replaced: bool


def ingest(store: Store, embed: Embed, name: str, data: bytes, chunk_size: int,
           chunk_overlap: int, progress: Progress) -> Ingested:
    """Index one file (``name`` already cleaned); a bad file raises ``DocumentError`` and
    leaves the index as it was."""
    progress.set(active=True, file=name, stage="parsing", done=0, total=0)
    sections = parse(name, data)
    chunks = split_sections(sections, chunk_size, chunk_overlap)
    if not chunks:
        raise DocumentError(f"{name} has no text: nothing to index",
                            hint="add a file that has text in it")
    file_id = store.begin_file(name, len(data))
    try:
        progress.set(stage="embedding", total=len(chunks))
        parts = []
        for start in range(0, len(chunks), EMBED_BATCH):
            parts.append(embed([c.text for c in chunks[start:start + EMBED_BATCH]]))
            progress.set(done=min(start + EMBED_BATCH, len(chunks)))
        progress.set(stage="storing")
        replaced = store.finish_file(file_id, chunks, np.concatenate(parts))
    except BaseException:
        store.abandon_file(file_id)
        raise
    return Ingested(name, len(chunks), len(data), replaced)
