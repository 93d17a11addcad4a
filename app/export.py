"""Exporting conversations (Markdown to read, JSON to keep) and importing JSON back.

One JSON format serves a single conversation and a backup of all of them:
``{"format": "opea-chat", "version": 1, "exported_at": ..., "conversations": [...]}``;
each message keeps its time, model, parameters, status and measurements. Import checks the
whole file first and refuses it with one line saying what is wrong, so a bad file adds
nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from app.errors import HistoryCorruptError, HistoryError, HistoryTooNewError, ImportFileError
from app.history import SQLITE_MAGIC, AnswerStatus, Conversation, Message, read_history_file
from opea.client import ChatParams

FORMAT = "opea-chat"
VERSION = 1
MAX_IMPORT_BYTES = 50_000_000

Exported = tuple[Conversation, list[Message]]


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def conversation_record(conversation: Conversation, messages: list[Message]) -> dict[str, Any]:
    return {
        "title": conversation.title,
        "system_prompt": conversation.system_prompt,
        "params": asdict(conversation.params),
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "messages": [{
            "role": m.role, "content": m.content, "created_at": m.created_at,
            "model": m.model, "params": asdict(m.params) if m.params else None,
            "status": m.status, "error": m.error, "completion_tokens": m.completion_tokens,
            "first_token_seconds": m.first_token_seconds,
            "tokens_per_second": m.tokens_per_second, "left_out": m.left_out,
            "cached": m.cached,
        } for m in messages],
    }


def to_json(conversations: list[Exported]) -> str:
    return json.dumps({
        "format": FORMAT, "version": VERSION, "exported_at": time.time(),
        "conversations": [conversation_record(c, m) for c, m in conversations],
    }, ensure_ascii=False, indent=2)


def to_markdown(conversation: Conversation, messages: list[Message]) -> str:
    lines = [f"# {conversation.title}", "",
             f"_Exported from opea-chat on {_stamp(time.time())}_", ""]
    if conversation.system_prompt.strip():
        lines += ["**System prompt:**", "", conversation.system_prompt, ""]
    for message in messages:
        if message.role == "user":
            lines += [f"## You · {_stamp(message.created_at)}", "", message.content, ""]
            continue
        about = [part for part in (
            message.model,
            f"{message.completion_tokens} tokens" if message.completion_tokens else None,
            f"{message.tokens_per_second:.1f} tokens/s" if message.tokens_per_second else None,
            "cached" if message.cached else None,
            message.status if message.status is not AnswerStatus.COMPLETE else None,
        ) if part]
        header = f"## Assistant · {_stamp(message.created_at)}"
        lines += [header + (f" ({', '.join(about)})" if about else ""), ""]
        if message.content:
            lines += [message.content, ""]
        if message.error:
            lines += [f"> Error: {message.error}", ""]
    return "\n".join(lines)


def _fail(reason: str) -> ImportFileError:
    return ImportFileError(f"cannot import: {reason}",
                           hint="choose a .json file exported by opea-chat, or a history "
                                "file set aside as history.sqlite3.old-*")


def _text(record: dict[str, Any], name: str, where: str, default: str | None = None) -> str:
    value = record.get(name, default)
    if not isinstance(value, str):
        raise _fail(f"{where} needs a text '{name}'")
    return value


def _number(record: dict[str, Any], name: str, where: str, default: float | None
            ) -> float | None:
    value = record.get(name, default)
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise _fail(f"{where} has a '{name}' that is not a number")


def _params(value: Any, where: str) -> ChatParams | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(f"{where} has 'params' that are not an object")
    try:
        return ChatParams(max_tokens=int(value.get("max_tokens", ChatParams.max_tokens)),
                          temperature=float(value.get("temperature", ChatParams.temperature)),
                          top_p=float(value.get("top_p", ChatParams.top_p)))
    except (TypeError, ValueError):
        raise _fail(f"{where} has parameters that are not numbers") from None


def _message(record: Any, where: str) -> Message:
    if not isinstance(record, dict):
        raise _fail(f"{where} is not an object")
    role = record.get("role")
    if role not in ("user", "assistant"):
        raise _fail(f"{where} has role {role!r}; expected 'user' or 'assistant'")
    raw_status = record.get("status", AnswerStatus.COMPLETE)
    try:
        status = AnswerStatus(raw_status)
    except ValueError:
        raise _fail(f"{where} has status {raw_status!r}") from None
    tokens = _number(record, "completion_tokens", where, None)
    error = record.get("error")
    model = record.get("model")
    return Message(
        id=0, conversation_id=0, role=role, content=_text(record, "content", where),
        created_at=_number(record, "created_at", where, time.time()) or time.time(),
        model=model if isinstance(model, str) else None,
        params=_params(record.get("params"), where), status=status,
        error=error if isinstance(error, str) else None,
        completion_tokens=int(tokens) if tokens is not None else None,
        first_token_seconds=_number(record, "first_token_seconds", where, None),
        tokens_per_second=_number(record, "tokens_per_second", where, None),
        left_out=int(_number(record, "left_out", where, 0) or 0),
        cached=bool(record.get("cached", False)))


def _check_size(data: bytes) -> None:
    if len(data) > MAX_IMPORT_BYTES:
        raise _fail(f"the file is {len(data) / 1e6:.0f} MB; the limit is "
                    f"{MAX_IMPORT_BYTES / 1e6:.0f} MB")


def parse_backup(data: bytes) -> list[Exported]:
    """Conversations from an export file, or from a history database file: one that was
    set aside (``history.sqlite3.old-*``) is how an earlier history comes back."""
    _check_size(data)
    if not data.startswith(SQLITE_MAGIC):
        return parse_json(data)
    try:
        return read_history_file(data)
    except HistoryCorruptError:
        raise _fail("the history file is damaged") from None
    except HistoryTooNewError:
        raise _fail("the history file is from a newer opea-chat") from None
    except HistoryError as error:  # a full or failing disk where the copy is read
        raise _fail(f"the history file cannot be read: {error.one_line()}") from None


def parse_json(data: bytes) -> list[Exported]:
    """Conversations from an export file (ids are 0: the store gives new ones)."""
    _check_size(data)
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise _fail("the file is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _fail(f"the file is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _fail("the file is JSON but not an opea-chat export")
    version = document.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise _fail(f"the file is from a newer opea-chat (format version {version})")
    records = document.get("conversations")
    if not isinstance(records, list):
        raise _fail("the file has no list of conversations")
    result = []
    for number, record in enumerate(records, 1):
        where = f"conversation {number}"
        if not isinstance(record, dict):
            raise _fail(f"{where} is not an object")
        messages = record.get("messages", [])
        if not isinstance(messages, list):
            raise _fail(f"{where} has no list of messages")
        now = time.time()
        conversation = Conversation(
            id=0, title=_text(record, "title", where).strip() or "Imported conversation",
            system_prompt=_text(record, "system_prompt", where, ""),
            params=_params(record.get("params"), where) or ChatParams(),
            created_at=_number(record, "created_at", where, now) or now,
            updated_at=_number(record, "updated_at", where, now) or now)
        result.append((conversation, [_message(m, f"{where}, message {index}")
                                      for index, m in enumerate(messages, 1)]))
    return result
