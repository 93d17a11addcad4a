"""The SQLite conversation store: conversations, their messages, prompt templates, the
app's settings and the answer cache, in one file in the data folder.

Why it is built this way:
- WAL journal and one transaction per change, each on its own short-lived connection, so a
  kill at any moment leaves the last committed change and nothing half-written, and the
  Streamlit sessions (threads) never share a connection.
- ``PRAGMA user_version`` is the schema version; ``MIGRATIONS`` upgrade an older file in
  place, each step in its own transaction. A file from a newer opea-chat is refused, not
  touched.
- Every sqlite3 failure becomes one ``HistoryError`` (locked, corrupt, too new) whose way
  out is ``set_aside``: move the file away (kept, never deleted) and start a fresh one.
  A full or failing disk is ``HistoryDiskError``: the file is fine, so its way out is free
  space and try again, never a fresh history (the conversations would seem lost).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from app.errors import (
    HistoryCorruptError,
    HistoryDiskError,
    HistoryError,
    HistoryLockedError,
    HistoryTooNewError,
)
from opea.client import ChatParams
from opea.sources import Source, from_json

FILE_NAME = "history.sqlite3"
DEFAULT_TITLE = "New conversation"
DELETED_KEPT_SECONDS = 24 * 3600  # how long a deleted conversation can be brought back
# SQLite's primary result codes for a disk that is full or fails (extended codes keep them
# in their low byte): on a full disk WAL mode mostly reports I/O errors, not "full".
SQLITE_IOERR, SQLITE_FULL = 10, 13
# Below this much free space a disk I/O error is taken for a full disk.
NEARLY_FULL_BYTES = 16 * 1024 * 1024
SQLITE_MAGIC = b"SQLite format 3\x00"

MIGRATIONS: tuple[str, ...] = (
    # 1: conversations and their messages, prompt templates, settings.
    """
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        system_prompt TEXT NOT NULL DEFAULT '',
        params TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        deleted_at REAL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        content TEXT NOT NULL,
        created_at REAL NOT NULL,
        model TEXT,
        params TEXT,
        status TEXT NOT NULL DEFAULT 'complete'
            CHECK (status IN ('complete', 'stopped', 'failed')),
        error TEXT,
        completion_tokens INTEGER,
        first_token_seconds REAL,
        tokens_per_second REAL,
        left_out INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
    CREATE TABLE templates (
        name TEXT PRIMARY KEY,
        system_prompt TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: answers to identical temperature-0 requests, and which messages came from there.
    """
    ALTER TABLE messages ADD COLUMN cached INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE answer_cache (
        key TEXT PRIMARY KEY,
        answer TEXT NOT NULL,
        completion_tokens INTEGER,
        created_at REAL NOT NULL
    );
    """,
    # 3: the sources (document passages) of RAG answers, as JSON; and the per-conversation
    # "Answer from my documents" switch (NULL: the default of the running profile).
    """
    ALTER TABLE messages ADD COLUMN sources TEXT;
    ALTER TABLE conversations ADD COLUMN use_documents INTEGER
    """,
    # 4: earlier versions of an answer (regenerate keeps them: one shown, the others
    # browsable), each answer linked to its question; and pinned conversations. Answers
    # already stored are linked to the question before them and stay shown.
    """
    ALTER TABLE messages ADD COLUMN question_id INTEGER;
    ALTER TABLE messages ADD COLUMN shown INTEGER NOT NULL DEFAULT 1;
    UPDATE messages SET question_id = (SELECT max(q.id) FROM messages q
        WHERE q.conversation_id = messages.conversation_id AND q.role = 'user'
        AND q.id < messages.id) WHERE role = 'assistant';
    CREATE INDEX messages_by_question ON messages(question_id);
    ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
# Links each answer of a conversation not yet linked to the question before it (new answers,
# imported ones); the same rule migration 4 applied to the answers already stored.
LINK_ANSWERS = (
    "UPDATE messages SET question_id = (SELECT max(q.id) FROM messages q "
    "WHERE q.conversation_id = messages.conversation_id AND q.role = 'user' "
    "AND q.id < messages.id) WHERE conversation_id = ? AND role = 'assistant' "
    "AND question_id IS NULL")


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    system_prompt: str
    params: ChatParams
    created_at: float
    updated_at: float
    message_count: int = 0
    # "Answer from my documents": None until the user flips it (the profile's default).
    use_documents: bool | None = None
    pinned: bool = False


@dataclass(frozen=True)
class Found:
    """A conversation that contains the text searched for, with the first of its messages
    that does (None: only the title does)."""

    conversation: Conversation
    message: str | None


@dataclass(frozen=True)
class Template:
    name: str
    system_prompt: str


class AnswerStatus(StrEnum):
    """How an answer ended (the ``status`` column's CHECK names the same values)."""

    COMPLETE = "complete"
    STOPPED = "stopped"  # the user stopped it: the text is partial
    FAILED = "failed"  # ``error`` says why


@dataclass(frozen=True, kw_only=True)
class AnswerMeta:
    """What is known about an answer besides its text."""

    model: str | None = None
    params: ChatParams | None = None
    status: AnswerStatus = AnswerStatus.COMPLETE
    error: str | None = None
    completion_tokens: int | None = None
    first_token_seconds: float | None = None
    tokens_per_second: float | None = None
    left_out: int = 0
    cached: bool = False
    # The document passages a RAG answer was given, best first.
    sources: tuple[Source, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Message(AnswerMeta):
    """One stored turn, a question or an answer, with what is known about it."""

    id: int
    conversation_id: int
    role: str
    content: str
    created_at: float
    # An answer's question: its versions (regenerate) are the answers to the same one.
    question_id: int | None = None


@dataclass(frozen=True)
class CachedAnswer:
    answer: str
    completion_tokens: int | None


def params_to_json(params: ChatParams) -> str:
    return json.dumps(asdict(params), sort_keys=True)


def params_from_json(text: str | None) -> ChatParams | None:
    if not text:
        return None
    values = json.loads(text)
    known = {name: values[name] for name in ("max_tokens", "temperature", "top_p")
             if name in values}
    return ChatParams(**known)


def sources_to_json(sources: tuple[Source, ...]) -> str | None:
    return json.dumps([s.to_json() for s in sources], ensure_ascii=False) if sources else None


def sources_from_json(text: str | None) -> tuple[Source, ...]:
    if not text:
        return ()
    items = json.loads(text)
    return tuple(from_json(item) for item in items if isinstance(item, dict))


def _conversation(row: sqlite3.Row) -> Conversation:
    use_documents = row["use_documents"]
    return Conversation(id=row["id"], title=row["title"], system_prompt=row["system_prompt"],
                        params=params_from_json(row["params"]) or ChatParams(),
                        created_at=row["created_at"], updated_at=row["updated_at"],
                        # Only listings count messages (a Row's "in" tests values, not names).
                        message_count=row["message_count"] if "message_count" in row.keys()  # noqa: SIM118
                        else 0,
                        use_documents=None if use_documents is None else bool(use_documents),
                        pinned=bool(row["pinned"]))


def _message(row: sqlite3.Row) -> Message:
    return Message(
        id=row["id"], conversation_id=row["conversation_id"], role=row["role"],
        content=row["content"], created_at=row["created_at"], model=row["model"],
        params=params_from_json(row["params"]), status=AnswerStatus(row["status"]),
        error=row["error"],
        completion_tokens=row["completion_tokens"],
        first_token_seconds=row["first_token_seconds"],
        tokens_per_second=row["tokens_per_second"], left_out=row["left_out"],
        cached=bool(row["cached"]), sources=sources_from_json(row["sources"]),
        question_id=row["question_id"],
    )


def title_from(question: str, limit: int = 60) -> str:
    """A conversation title from its first question: the first line, shortened."""
    line = next((line.strip() for line in question.splitlines() if line.strip()), "")
    line = " ".join(line.split())
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return line or DEFAULT_TITLE


def set_aside(path: Path, reason: str) -> Path:
    """Move a history file (and its WAL and shared-memory files) out of the way, keeping it.

    Returns the new name of the main file. Nothing is deleted: the user may want it back.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.{reason}-{stamp}")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}.{reason}-{stamp}-{counter}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.replace(Path(f"{target}{suffix}"))
    return target


def free_bytes(folder: Path) -> int | None:
    """Free space on the disk holding ``folder`` (None: cannot tell)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def megabytes(size: int) -> str:
    return f"{size / 1e6:,.0f} MB" if size >= 1e6 else f"{size / 1e6:.1f} MB"


def disk_error(path: Path, reason: str) -> HistoryDiskError:
    """The disk under the history is full or fails: say which, with the free space."""
    free = free_bytes(path.parent)
    shown = "free space unknown" if free is None else f"{megabytes(free)} free"
    kept = f"your conversations are kept in {path}"
    if "full" in reason or (free is not None and free < NEARLY_FULL_BYTES):
        return HistoryDiskError(
            f"the disk holding the chat history ({path.parent}) is full: {shown}", str(path),
            free_bytes=free, hint=f"free some space on that disk, then reload; {kept}")
    return HistoryDiskError(
        f"the disk holding the chat history ({path.parent}) failed to read or write it "
        f"({reason}; {shown})", str(path), free_bytes=free,
        hint=f"check that disk (its space, `dmesg`), then reload; {kept}")


def _is_disk_error(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (SQLITE_IOERR, SQLITE_FULL)
    reason = str(exc)
    return "disk I/O error" in reason or "database or disk is full" in reason


def read_history_file(data: bytes) -> list[tuple[Conversation, list[Message]]]:
    """Every conversation (with its messages) of a history file's bytes: one set aside as
    ``history.sqlite3.old-*``, so earlier data can be imported back. Read from a private
    copy, upgraded there to this schema; the original file is never touched."""
    with tempfile.TemporaryDirectory(prefix="opea-chat-import-") as folder:
        copy = Path(folder) / FILE_NAME
        copy.write_bytes(data)
        history = History(copy)
        return [(c, history.messages(c.id)) for c in reversed(history.conversations())]


class History:
    """One history file. Every public method is one transaction."""

    def __init__(self, path: Path, busy_timeout: float = 5.0):
        self.path = path
        self.busy_timeout = busy_timeout
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The user's alone whatever the umask of the process that opens it first (the
        # launcher's children have 077; an image or a test may not). SQLite gives its
        # -wal and -shm files the same permissions. Where it cannot be created, SQLite's
        # own open below says why. O_EXCL: never an open and close of an existing file,
        # which would drop the POSIX locks that another connection of this process holds.
        with suppress(OSError):
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        with self._errors():
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = self._connect()
            try:
                mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode != "wal":
                    raise sqlite3.DatabaseError(f"cannot switch to WAL mode ({mode})")
                check = [row[0] for row in connection.execute("PRAGMA quick_check")]
                if check != ["ok"]:
                    raise sqlite3.DatabaseError("; ".join(check[:3]))
                self._migrate(connection)
            finally:
                connection.close()
        self.purge_deleted()

    # Plumbing -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=self.busy_timeout,
                                     isolation_level=None, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA foreign_keys=ON")
        # FULL: a committed change survives a power cut too, not only a killed process.
        connection.execute("PRAGMA synchronous=FULL")
        connection.create_function("casefold", 1, lambda text: (text or "").casefold(),
                                   deterministic=True)
        return connection

    @contextmanager
    def _errors(self) -> Iterator[None]:
        where = str(self.path)
        way_out = "or start a fresh history (the old file is kept)"
        damaged_way_out = "start a fresh history (the damaged file is kept)"
        try:
            yield
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise  # our own bug, not the file's: keep the traceback
        except OSError as exc:  # the data folder cannot even be made
            raise disk_error(self.path, exc.strerror or str(exc)) from exc
        except sqlite3.DatabaseError as exc:
            # First: a full or failing disk says nothing about the file, which is kept.
            if _is_disk_error(exc):
                raise disk_error(self.path, str(exc)) from exc
            reason = str(exc)
            if not isinstance(exc, sqlite3.OperationalError):
                raise HistoryCorruptError(f"the chat history {where} is damaged ({reason})",
                                          where, hint=damaged_way_out) from exc
            if "locked" in reason or "busy" in reason:
                raise HistoryLockedError(
                    f"the chat history {where} is locked by another program",
                    where, hint=f"close other programs using it and try again, {way_out}",
                ) from exc
            if "malformed" in reason or "not a database" in reason:
                raise HistoryCorruptError(f"the chat history {where} is damaged ({reason})",
                                          where, hint=damaged_way_out) from exc
            raise HistoryError(f"the chat history {where} cannot be used ({reason})", where,
                               hint=f"check the file and its folder, {way_out}") from exc

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        with self._errors():
            connection = self._connect()
            try:
                connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            finally:
                connection.close()

    def _migrate(self, connection: sqlite3.Connection) -> None:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise HistoryTooNewError(
                f"the chat history {self.path} is from a newer opea-chat (schema {version}; "
                f"this one knows up to {SCHEMA_VERSION})", str(self.path),
                hint="upgrade opea-chat, or start a fresh history (the old file is kept)")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            connection.execute("BEGIN IMMEDIATE")
            try:
                # Statement by statement: executescript() would commit on its own, and a
                # migration must apply whole or not at all. (No ';' inside the SQL text.)
                for statement in MIGRATIONS[number - 1].split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {number}")
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        with self._transaction(write=False) as connection:
            version: int = connection.execute("PRAGMA user_version").fetchone()[0]
            return version

    # Conversations ------------------------------------------------------------------

    def create_conversation(self, title: str = DEFAULT_TITLE, system_prompt: str = "",
                            params: ChatParams | None = None) -> Conversation:
        now = time.time()
        with self._transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO conversations (title, system_prompt, params, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?)",
                (title, system_prompt, params_to_json(params or ChatParams()), now, now))
            row = connection.execute("SELECT * FROM conversations WHERE id = ?",
                                     (cursor.lastrowid,)).fetchone()
            return _conversation(row)

    def conversation(self, conversation_id: int) -> Conversation | None:
        with self._transaction(write=False) as connection:
            row = connection.execute(
                "SELECT * FROM conversations WHERE id = ? AND deleted_at IS NULL",
                (conversation_id,)).fetchone()
            return _conversation(row) if row else None

    def conversations(self, search: str = "") -> list[Conversation]:
        """Newest first; with ``search``, those whose title or any message contains it
        (case-insensitive, any language)."""
        return [found.conversation for found in self.search(search)]

    def search(self, text: str) -> list[Found]:
        """Newest first, the conversations whose title or any message on screen (not an
        earlier version of an answer) contains ``text`` (case-insensitive, any language),
        each with the first such message; every conversation for an empty ``text``."""
        needle = text.strip().casefold()
        with self._transaction(write=False) as connection:
            rows = connection.execute(
                "SELECT *, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id "
                "AND m.shown) AS message_count, (SELECT m.content FROM messages m "
                "WHERE m.conversation_id = c.id AND m.shown AND ? != '' "
                "AND instr(casefold(m.content), ?) > 0 ORDER BY m.id LIMIT 1) AS found "
                "FROM conversations c WHERE deleted_at IS NULL AND (? = '' "
                "OR instr(casefold(title), ?) > 0 OR found IS NOT NULL) "
                "ORDER BY updated_at DESC, id DESC",
                (needle, needle, needle, needle)).fetchall()
            return [Found(_conversation(row), row["found"]) for row in rows]

    def rename(self, conversation_id: int, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise ValueError("a conversation needs a title")
        with self._transaction() as connection:
            connection.execute("UPDATE conversations SET title = ? WHERE id = ?",
                               (title, conversation_id))

    def retitle(self, conversation_id: int, title: str, was: str) -> bool:
        """Rename a conversation only if its title is still ``was`` (a title written in
        the background never replaces one the user gave meanwhile)."""
        with self._transaction() as connection:
            return connection.execute(
                "UPDATE conversations SET title = ? WHERE id = ? AND title = ?",
                (title, conversation_id, was)).rowcount == 1

    def configure(self, conversation_id: int, system_prompt: str, params: ChatParams) -> None:
        """Set a conversation's system prompt and parameters."""
        with self._transaction() as connection:
            connection.execute(
                "UPDATE conversations SET system_prompt = ?, params = ? WHERE id = ?",
                (system_prompt, params_to_json(params), conversation_id))

    def pin(self, conversation_id: int, pinned: bool) -> None:
        """Pin a conversation (the sidebar lists it at the top) or unpin it."""
        with self._transaction() as connection:
            connection.execute("UPDATE conversations SET pinned = ? WHERE id = ?",
                               (int(pinned), conversation_id))

    def set_use_documents(self, conversation_id: int, value: bool) -> None:
        """The conversation's "Answer from my documents" switch."""
        with self._transaction() as connection:
            connection.execute("UPDATE conversations SET use_documents = ? WHERE id = ?",
                               (int(value), conversation_id))

    def delete(self, conversation_id: int) -> None:
        """Delete a conversation; ``undo_delete`` brings it back for a day."""
        with self._transaction() as connection:
            connection.execute("UPDATE conversations SET deleted_at = ? WHERE id = ?",
                               (time.time(), conversation_id))

    def undo_delete(self) -> Conversation | None:
        """Bring back the most recently deleted conversation, if any."""
        with self._transaction() as connection:
            row = connection.execute(
                "SELECT * FROM conversations WHERE deleted_at IS NOT NULL "
                "ORDER BY deleted_at DESC LIMIT 1").fetchone()
            if row is None:
                return None
            connection.execute("UPDATE conversations SET deleted_at = NULL WHERE id = ?",
                               (row["id"],))
            return _conversation(row)

    def purge_deleted(self, older_than: float = DELETED_KEPT_SECONDS) -> int:
        with self._transaction() as connection:
            cursor = connection.execute(
                "DELETE FROM conversations WHERE deleted_at IS NOT NULL AND deleted_at < ?",
                (time.time() - older_than,))
            return cursor.rowcount

    # Messages -----------------------------------------------------------------------

    def messages(self, conversation_id: int) -> list[Message]:
        """The conversation as shown: of an answer's versions, the one chosen."""
        with self._transaction(write=False) as connection:
            rows = connection.execute(
                "SELECT * FROM messages WHERE conversation_id = ? AND shown ORDER BY id",
                (conversation_id,)).fetchall()
            return [_message(row) for row in rows]

    def versions(self, answer: Message) -> list[Message]:
        """Every version of an answer (regenerate keeps the earlier ones), oldest first."""
        if answer.question_id is None:
            return [answer]
        with self._transaction(write=False) as connection:
            rows = connection.execute(
                "SELECT * FROM messages WHERE question_id = ? AND role = 'assistant' "
                "ORDER BY id", (answer.question_id,)).fetchall()
            return [_message(row) for row in rows] or [answer]

    def set_aside_answer(self, message_id: int) -> None:
        """Keep an answer as an earlier version, off screen, so that its question can be
        answered again (regenerate)."""
        with self._transaction() as connection:
            connection.execute("UPDATE messages SET shown = 0 WHERE id = ? AND "
                               "role = 'assistant'", (message_id,))

    def show_version(self, message_id: int) -> None:
        """Show this version of an answer instead of the others."""
        with self._transaction() as connection:
            row = connection.execute("SELECT question_id, role FROM messages WHERE id = ?",
                                     (message_id,)).fetchone()
            if row is None or row["role"] != "assistant" or row["question_id"] is None:
                raise ValueError(f"message {message_id} is not an answer to a question")
            connection.execute("UPDATE messages SET shown = (id = ?) WHERE question_id = ? "
                               "AND role = 'assistant'", (message_id, row["question_id"]))

    def add_question(self, conversation_id: int, text: str, model: str | None,
                     params: ChatParams) -> Message:
        """Save a question; the first one also names a conversation still untitled."""
        return self._add(conversation_id, "user", text,
                         AnswerMeta(model=model, params=params), retitle=True)

    def add_answer(self, conversation_id: int, text: str, meta: AnswerMeta) -> Message:
        return self._add(conversation_id, "assistant", text, meta, retitle=False)

    def _add(self, conversation_id: int, role: str, text: str, meta: AnswerMeta,
             retitle: bool) -> Message:
        now = time.time()
        with self._transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at, model, "
                "params, status, error, completion_tokens, first_token_seconds, "
                "tokens_per_second, left_out, cached, sources) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, role, text, now, meta.model,
                 params_to_json(meta.params) if meta.params else None, meta.status,
                 meta.error, meta.completion_tokens, meta.first_token_seconds,
                 meta.tokens_per_second, meta.left_out, meta.cached,
                 sources_to_json(meta.sources)))
            connection.execute("UPDATE conversations SET updated_at = ? WHERE id = ?",
                               (now, conversation_id))
            if role == "assistant":
                connection.execute(LINK_ANSWERS, (conversation_id,))
            if retitle:
                connection.execute("UPDATE conversations SET title = ? WHERE id = ? AND "
                                   "title = ?", (title_from(text), conversation_id,
                                                 DEFAULT_TITLE))
            row = connection.execute("SELECT * FROM messages WHERE id = ?",
                                     (cursor.lastrowid,)).fetchone()
            return _message(row)

    def remove_from(self, conversation_id: int, message_id: int) -> int:
        """Remove a message and every later one of its conversation (regenerate, retry)."""
        with self._transaction() as connection:
            cursor = connection.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND id >= ?",
                (conversation_id, message_id))
            return cursor.rowcount

    def edit_question(self, message_id: int, text: str) -> None:
        """Replace a question's text and drop what came after it, in one change."""
        with self._transaction() as connection:
            row = connection.execute("SELECT conversation_id, role FROM messages WHERE id = ?",
                                     (message_id,)).fetchone()
            if row is None or row["role"] != "user":
                raise ValueError(f"message {message_id} is not a question")
            connection.execute("UPDATE messages SET content = ?, created_at = ? WHERE id = ?",
                               (text, time.time(), message_id))
            connection.execute("DELETE FROM messages WHERE conversation_id = ? AND id > ?",
                               (row["conversation_id"], message_id))

    def import_conversation(self, conversation: Conversation, messages: list[Message]
                            ) -> Conversation:
        """Add a whole conversation (from an export) as a new one, in one change. Ids in
        the arguments are ignored; times, models and statistics are kept."""
        with self._transaction() as connection:
            cursor = connection.execute(
                "INSERT INTO conversations (title, system_prompt, params, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?)",
                (conversation.title, conversation.system_prompt,
                 params_to_json(conversation.params), conversation.created_at,
                 conversation.updated_at))
            new_id = cursor.lastrowid
            connection.executemany(
                "INSERT INTO messages (conversation_id, role, content, created_at, model, "
                "params, status, error, completion_tokens, first_token_seconds, "
                "tokens_per_second, left_out, cached, sources) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(new_id, m.role, m.content, m.created_at, m.model,
                  params_to_json(m.params) if m.params else None, m.status, m.error,
                  m.completion_tokens, m.first_token_seconds, m.tokens_per_second, m.left_out,
                  m.cached, sources_to_json(m.sources)) for m in messages])
            connection.execute(LINK_ANSWERS, (new_id,))
            row = connection.execute("SELECT * FROM conversations WHERE id = ?",
                                     (new_id,)).fetchone()
            return _conversation(row)

    # Templates and settings ---------------------------------------------------------

    def templates(self) -> list[Template]:
        with self._transaction(write=False) as connection:
            rows = connection.execute("SELECT name, system_prompt FROM templates "
                                      "ORDER BY name COLLATE NOCASE").fetchall()
            return [Template(row["name"], row["system_prompt"]) for row in rows]

    def save_template(self, name: str, system_prompt: str) -> None:
        name = " ".join(name.split())
        if not name:
            raise ValueError("a template needs a name")
        with self._transaction() as connection:
            connection.execute(
                "INSERT INTO templates (name, system_prompt, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET system_prompt = excluded.system_prompt",
                (name, system_prompt, time.time()))

    def delete_template(self, name: str) -> None:
        with self._transaction() as connection:
            connection.execute("DELETE FROM templates WHERE name = ?", (name,))

    def setting(self, key: str, default: Any) -> Any:
        with self._transaction(write=False) as connection:
            row = connection.execute("SELECT value FROM settings WHERE key = ?",
                                     (key,)).fetchone()
            return json.loads(row["value"]) if row else default

    def set_setting(self, key: str, value: Any) -> None:
        with self._transaction() as connection:
            connection.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)))

    # The answer cache ---------------------------------------------------------------

    def cached_answer(self, key: str) -> CachedAnswer | None:
        with self._transaction(write=False) as connection:
            row = connection.execute("SELECT answer, completion_tokens FROM answer_cache "
                                     "WHERE key = ?", (key,)).fetchone()
            return CachedAnswer(row["answer"], row["completion_tokens"]) if row else None

    def cache_answer(self, key: str, answer: str, completion_tokens: int | None) -> None:
        with self._transaction() as connection:
            connection.execute(
                "INSERT INTO answer_cache (key, answer, completion_tokens, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET answer = excluded.answer, "
                "completion_tokens = excluded.completion_tokens, "
                "created_at = excluded.created_at",
                (key, answer, completion_tokens, time.time()))

    def clear_answer_cache(self) -> int:
        with self._transaction() as connection:
            return connection.execute("DELETE FROM answer_cache").rowcount
