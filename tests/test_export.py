"""Export to Markdown and JSON, import JSON back: a round trip keeps everything, and a bad
file is refused with one line and adds nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.errors import ImportFileError
from app.export import MAX_IMPORT_BYTES, parse_json, to_json, to_markdown
from app.history import AnswerMeta, AnswerStatus, History
from opea.client import ChatParams

PARAMS = ChatParams(max_tokens=100, temperature=0.0, top_p=0.5)


@pytest.fixture
def history(tmp_path: Path) -> History:
    store = History(tmp_path / "one.sqlite3")
    first = store.create_conversation(system_prompt="Be kind.", params=PARAMS)
    store.add_question(first.id, "Hello? <b>bold</b> 日本", "smollm2-135m", PARAMS)
    store.add_answer(first.id, "Hi!\n\n```python\nprint(1)\n```", AnswerMeta(
        model="smollm2-135m", params=PARAMS, completion_tokens=12, first_token_seconds=0.2,
        tokens_per_second=50.0, left_out=1, cached=True))
    store.add_question(first.id, "Long story?", "smollm2-135m", PARAMS)
    store.add_answer(first.id, "Once upon", AnswerMeta(status=AnswerStatus.STOPPED))
    store.add_question(first.id, "Again?", None, PARAMS)
    store.add_answer(first.id, "", AnswerMeta(status=AnswerStatus.FAILED, error="service down"))
    second = store.create_conversation()
    store.add_question(second.id, "Second", None, ChatParams())
    return store


def everything(store: History) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for conversation in sorted(store.conversations(), key=lambda c: c.created_at):
        rows.append((conversation.title, conversation.system_prompt, conversation.params,
                     conversation.created_at))
        rows += [(m.role, m.content, m.created_at, m.model, m.params, m.status, m.error,
                  m.completion_tokens, m.first_token_seconds, m.tokens_per_second,
                  m.left_out, m.cached) for m in store.messages(conversation.id)]
    return rows


def test_a_backup_restores_every_conversation_with_all_its_details(history: History,
                                                                   tmp_path: Path) -> None:
    backup = to_json([(c, history.messages(c.id)) for c in history.conversations()])
    restored = History(tmp_path / "two.sqlite3")
    for conversation, messages in parse_json(backup.encode()):
        restored.import_conversation(conversation, messages)
    assert everything(restored) == everything(history)


def test_markdown_export_reads_as_the_conversation(history: History) -> None:
    conversation = next(c for c in history.conversations() if c.system_prompt)
    text = to_markdown(conversation, history.messages(conversation.id))
    assert text.startswith("# Hello? <b>bold</b> 日本\n")
    assert "**System prompt:**\n\nBe kind." in text
    assert "## You · " in text and "Hello? <b>bold</b> 日本" in text
    assert "(smollm2-135m, 12 tokens, 50.0 tokens/s, cached)" in text
    assert "```python\nprint(1)\n```" in text
    assert "(stopped)" in text and "> Error: service down" in text


def export_with(**changes: object) -> bytes:
    document: dict[str, object] = {"format": "opea-chat", "version": 1, "conversations": [
        {"title": "t", "messages": [{"role": "user", "content": "hi"}]}]}
    document.update(changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize(("data", "reason"), [
    (b"{not json", "the file is not JSON (Expecting property name"),
    (b"\xff\xfe\x00", "the file is not UTF-8 text"),
    (b'{"messages": []}', "not an opea-chat export"),
    (b"[1, 2]", "not an opea-chat export"),
    (export_with(version=2), "from a newer opea-chat (format version 2)"),
    (export_with(conversations={}), "no list of conversations"),
    (export_with(conversations=[{"title": 5}]), "conversation 1 needs a text 'title'"),
    (export_with(conversations=[{"title": "t", "messages": [{"role": "robot",
                                                              "content": "x"}]}]),
     "conversation 1, message 1 has role 'robot'"),
    (export_with(conversations=[{"title": "t", "messages": [{"role": "user"}]}]),
     "message 1 needs a text 'content'"),
    (export_with(conversations=[{"title": "t", "messages": [
        {"role": "user", "content": "x", "created_at": "yesterday"}]}]),
     "'created_at' that is not a number"),
    (b" " * (MAX_IMPORT_BYTES + 1), "the limit is 50 MB"),
])
def test_a_bad_file_is_refused_with_one_line(data: bytes, reason: str) -> None:
    with pytest.raises(ImportFileError) as caught:
        parse_json(data)
    line = caught.value.one_line()
    assert reason in line and "choose a .json file exported by opea-chat" in line
    assert "\n" not in line


def test_a_minimal_hand_written_file_is_accepted_with_defaults() -> None:
    [(conversation, messages)] = parse_json(export_with())
    assert conversation.title == "t" and conversation.params == ChatParams()
    assert [(m.role, m.content, m.status) for m in messages] == [("user", "hi", "complete")]
