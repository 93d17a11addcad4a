"""A client for OPEA's dataprep API: add documents to the index, list them, remove them.

OPEA's dataprep takes one file per ``POST /v1/dataprep/ingest`` (multipart ``files``, with
``chunk_size`` and ``chunk_overlap``), lists with ``POST /v1/dataprep/get`` and removes with
``POST /v1/dataprep/delete`` (``{"file_path": NAME}`` or ``"all"``). Every failure becomes
one ``launcher.errors`` exception whose message is what the service said.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from opea.errors import (
    DocumentRefusedError,
    RequestTimeoutError,
    ServiceHTTPError,
    ServiceUnreachableError,
)

INGEST_PATH = "/v1/dataprep/ingest"
GET_PATH = "/v1/dataprep/get"
PROGRESS_PATH = "/v1/dataprep/progress"
DELETE_PATH = "/v1/dataprep/delete"
# ChatQnA's defaults (its dataprep's chunk_size / chunk_overlap form fields).
CHUNK_SIZE = 1500
CHUNK_OVERLAP = 100
# What the dataprep services parse; anything else is refused before it is sent.
SUPPORTED_SUFFIXES = (".pdf", ".docx", ".txt", ".md", ".markdown", ".html", ".htm")


@dataclass(frozen=True)
class Document:
    """One indexed document, as dataprep lists it (OPEA's own lists only names)."""

    name: str
    size_bytes: int | None = None
    chunks: int | None = None
    added: str | None = None  # ISO 8601, UTC
    # "complete", or "incomplete": an ingest killed half-way (its chunks are never used).
    status: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "size_bytes": self.size_bytes, "chunks": self.chunks,
                "added": self.added, "status": self.status}


@dataclass(frozen=True)
class IngestProgress:
    """``GET /v1/dataprep/progress`` while an ingest runs: the chunks of one file."""

    active: bool
    file: str | None = None
    stage: str | None = None
    done: int = 0
    total: int = 0


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def document_from(item: Any) -> Document:
    """One entry of ``/v1/dataprep/get``: OPEA lists ``{"name", "id", "type", ...}``
    objects (opea-chat's dataprep adds ``bytes``, ``chunks``, ``added``, ``status``)."""
    if not isinstance(item, dict):
        return Document(name=str(item))
    name = item.get("name") or item.get("id")
    added = item.get("added")
    return Document(name=str(name or "?"), size_bytes=_int(item.get("bytes")),
                    chunks=_int(item.get("chunks")),
                    added=str(added) if added else None, status=item.get("status"))


def documents_in(body: Any) -> list[Document]:
    items = body.get("documents", []) if isinstance(body, dict) else body
    return [document_from(item) for item in items or []]


def files_under(paths: Iterable[Path]) -> list[Path]:
    """The files to add: each file given, and the supported files anywhere under each
    folder given (sorted, hidden ones skipped). A path that does not exist is an error."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file()
                            and p.suffix.lower() in SUPPORTED_SUFFIXES
                            and not any(part.startswith(".") for part in
                                        p.relative_to(path).parts))
        elif path.is_file():
            found.append(path)
        else:
            raise DocumentRefusedError(f"{path} does not exist",
                                hint="give the path of a file or a folder")
    return found


def _detail(response: httpx.Response) -> str:
    """What a service said about a refused request: FastAPI's ``detail``, or the text."""
    with contextlib.suppress(ValueError, AttributeError):
        body = response.json()
        detail = body.get("detail", body.get("error", body.get("message")))
        if detail:
            return detail if isinstance(detail, str) else json.dumps(detail)
    return " ".join(response.text.split())[:300] or f"HTTP {response.status_code}"


class DataprepClient:
    def __init__(self, base_url: str, *, connect_timeout: float = 5.0,
                 read_timeout: float = 600.0):
        self.base_url = base_url.rstrip("/")
        self.read_timeout = read_timeout
        self._http = httpx.Client(base_url=self.base_url,
                                  timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
                                  transport=httpx.HTTPTransport(retries=3), trust_env=False)

    def __enter__(self) -> DataprepClient:
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
                f"cannot reach the dataprep service at {url}",
                hint="is `opea-chat launch --profile rag` running?") from exc
        except httpx.TimeoutException as exc:
            raise RequestTimeoutError(f"{url} sent nothing for {self.read_timeout:g} s",
                                      hint="a very large document takes long; try again")\
                from exc

    def _post(self, path: str, **kwargs: Any) -> Any:
        with self._errors(path):
            response = self._http.post(path, **kwargs)
        if response.status_code in (400, 404, 409, 413, 415, 422):
            raise DocumentRefusedError(_detail(response), status=response.status_code)
        if response.is_error:
            raise ServiceHTTPError(response.status_code, response.text, str(response.url))
        try:
            return response.json()
        except ValueError:
            return response.text

    def add(self, path: Path, name: str | None = None, chunk_size: int = CHUNK_SIZE,
            chunk_overlap: int = CHUNK_OVERLAP) -> Any:
        """Parse, split, embed and store one file (replacing one of the same name)."""
        with path.open("rb") as handle:
            return self._post(INGEST_PATH,
                              files={"files": (name or path.name, handle)},
                              data={"chunk_size": str(chunk_size),
                                    "chunk_overlap": str(chunk_overlap)})

    def add_bytes(self, name: str, content: bytes, chunk_size: int = CHUNK_SIZE,
                  chunk_overlap: int = CHUNK_OVERLAP) -> Any:
        """``add`` for an upload already in memory (the app's file uploader)."""
        return self._post(INGEST_PATH, files={"files": (name, content)},
                          data={"chunk_size": str(chunk_size),
                                "chunk_overlap": str(chunk_overlap)})

    def documents(self) -> list[Document]:
        return documents_in(self._post(GET_PATH, json={}))

    def progress(self) -> IngestProgress:
        """Where the running ingest is (poll it from another thread while ``add`` runs)."""
        with self._errors(PROGRESS_PATH):
            response = self._http.get(PROGRESS_PATH, timeout=5.0)
        try:
            body = response.json() if not response.is_error else {}
        except ValueError:
            body = {}
        return IngestProgress(active=bool(body.get("active")), file=body.get("file"),
                              stage=body.get("stage"), done=_int(body.get("done")) or 0,
                              total=_int(body.get("total")) or 0)

    def remove(self, name: str) -> Any:
        """Remove one document by name; ``remove_all`` removes every one."""
        return self._post(DELETE_PATH, json={"file_path": name})

    def remove_all(self) -> Any:
        return self._post(DELETE_PATH, json={"file_path": "all"})


def add_all(client: DataprepClient, files: list[Path],
            progress: Callable[[int, Path, DocumentRefusedError | None], None]) -> int:
    """Add each file in turn, telling ``progress`` (files done, file, its error or None)
    after each; a file refused (bad PDF, unsupported type) does not stop the others.
    Returns the number of files refused."""
    refused = 0
    for done, path in enumerate(files, start=1):
        try:
            client.add(path)
        except DocumentRefusedError as error:
            refused += 1
            progress(done, path, error)
            continue
        progress(done, path, None)
    return refused
