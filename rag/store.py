"""The document index: files, their chunks and the chunks' vectors, in one SQLite file under
the data folder (``index.sqlite3``), searched in memory with numpy.

Why SQLite + numpy and not qdrant-client's local mode (measured by bench/rag_bench.py): the
index is written by dataprep and read by the retriever, two processes, and Qdrant's local
mode locks its folder to one process; SQLite in WAL mode lets one writer and many readers
share the file. Exact search over a float32 matrix is as fast as search gets below ~1M
chunks, and SQLite transactions make an ingest all-or-nothing.

Crash safety: a file is first recorded as ``ingesting`` (committed), its chunks are embedded,
then the chunks, the file's ``complete`` status and the removal of an older file of the same
name are committed in one transaction. A process killed half-way leaves a file row without
chunks; the next dataprep start marks it ``incomplete`` (listed as such, never searched).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rag.chunks import Chunk

INDEX_FILE = "index.sqlite3"
COMPLETE, INGESTING, INCOMPLETE = "complete", "ingesting", "incomplete"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    chunks INTEGER NOT NULL DEFAULT 0,
    added TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ingesting', 'complete', 'incomplete'))
);
CREATE INDEX IF NOT EXISTS files_name ON files (name);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    text TEXT NOT NULL,
    page INTEGER,
    heading TEXT,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks (file_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('generation', 0);
INSERT OR IGNORE INTO meta VALUES ('removals', 0);
"""


@dataclass(frozen=True)
class FileRecord:
    id: int
    name: str
    bytes: int
    chunks: int
    added: str
    status: str


@dataclass(frozen=True)
class StoredChunk:
    id: int
    source: str
    seq: int
    text: str
    page: int | None
    heading: str | None


def prepare_data_dir(data_dir: Path) -> Path:
    """The index file's path; the folder is created 0700 and the file 0600."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    data_dir.chmod(0o700)
    path = data_dir / INDEX_FILE
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    path.chmod(0o600)
    return path


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.path = prepare_data_dir(data_dir)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a killed process loses nothing committed (only power loss could).
        self._db.execute("PRAGMA synchronous=NORMAL")
        # The write-ahead log grows to the largest ingest; give the space back afterwards.
        self._db.execute("PRAGMA journal_size_limit=8388608")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _bump(self, db: sqlite3.Connection, removed: bool = False) -> None:
        """Count a change; ``removed``: chunks were deleted (a reader must reload them all,
        where after additions alone it may read just the new ones)."""
        keys = ("generation", "removals") if removed else ("generation",)
        for key in keys:
            db.execute("UPDATE meta SET value = value + 1 WHERE key = ?", (key,))

    def generation(self) -> int:
        return self.counters()[0]

    def counters(self) -> tuple[int, int]:
        """How many changes, and how many of them removed chunks."""
        with self._lock:
            rows = dict(self._db.execute(
                "SELECT key, value FROM meta WHERE key IN ('generation', 'removals')"))
        return int(rows["generation"]), int(rows["removals"])

    # -- writing (dataprep) ----------------------------------------------------------

    def mark_interrupted(self) -> int:
        """Files left ``ingesting`` by a process that died: now ``incomplete``."""
        with self._transaction() as db:
            return db.execute("UPDATE files SET status=? WHERE status=?",
                              (INCOMPLETE, INGESTING)).rowcount

    def begin_file(self, name: str, size: int) -> int:
        added = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO files (name, bytes, added, status) VALUES (?, ?, ?, ?)",
                (name, size, added, INGESTING))
        return int(cursor.lastrowid or 0)

    def abandon_file(self, file_id: int) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM files WHERE id=?", (file_id,))

    def finish_file(self, file_id: int, chunks: Sequence[Chunk],
                    vectors: npt.NDArray[np.float32]) -> bool:
        """Store the chunks and make the file searchable, replacing any other file of the
        same name, in one transaction. True when an older file was replaced."""
        rows = [(file_id, c.index, c.text, c.page, c.heading,
                 np.ascontiguousarray(v, dtype=np.float32).tobytes())
                for c, v in zip(chunks, vectors, strict=True)]
        with self._transaction() as db:
            (name,) = db.execute("SELECT name FROM files WHERE id=?", (file_id,)).fetchone()
            replaced = db.execute("DELETE FROM files WHERE name=? AND id<>?",
                                  (name, file_id)).rowcount
            db.executemany("INSERT INTO chunks (file_id, seq, text, page, heading, vector) "
                           "VALUES (?, ?, ?, ?, ?, ?)", rows)
            db.execute("UPDATE files SET status=?, chunks=? WHERE id=?",
                       (COMPLETE, len(rows), file_id))
            self._bump(db, removed=replaced > 0)
        return replaced > 0

    def delete(self, name: str) -> bool:
        with self._transaction() as db:
            gone = db.execute("DELETE FROM files WHERE name=?", (name,)).rowcount
            self._bump(db, removed=True)
        return gone > 0

    def delete_all(self) -> int:
        with self._transaction() as db:
            gone = db.execute("DELETE FROM files").rowcount
            self._bump(db, removed=True)
        return gone

    # -- reading (dataprep's list, the retriever) ------------------------------------------

    def files(self) -> list[FileRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, bytes, chunks, added, status FROM files ORDER BY added, id"
            ).fetchall()
        return [FileRecord(*row) for row in rows]

    def vectors(self, after: int = 0) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Ids (ascending) and vectors (one row each) of the chunks of every complete file;
        with ``after``, only the chunks whose id is greater (added since)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT c.id, c.vector FROM chunks c JOIN files f ON f.id = c.file_id "
                "WHERE f.status = ? AND c.id > ? ORDER BY c.id", (COMPLETE, after)).fetchall()
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, 0), dtype=np.float32)
        matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32)
        return ids, matrix.reshape(len(rows), -1)

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        if not ids:
            return {}
        with self._lock:
            rows = self._db.execute(
                "SELECT c.id, f.name, c.seq, c.text, c.page, c.heading FROM chunks c "
                "JOIN files f ON f.id = c.file_id "
                "WHERE c.id IN (SELECT value FROM json_each(?))",
                (json.dumps([int(i) for i in ids]),)).fetchall()
        return {row[0]: StoredChunk(*row) for row in rows}
