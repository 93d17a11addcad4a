"""The SQLite conversation store, on real files: what it keeps, how it searches, and how it
fails (locked by another process, damaged, from a newer version, killed mid-write)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.errors import (
    HistoryCorruptError,
    HistoryDiskError,
    HistoryLockedError,
    HistoryTooNewError,
    ImportFileError,
)
from app.export import parse_backup
from app.history import (
    DEFAULT_TITLE,
    MIGRATIONS,
    SCHEMA_VERSION,
    AnswerMeta,
    CachedAnswer,
    History,
    set_aside,
)
from opea.client import ChatParams
from opea.sources import Source
from tests.full_disk import fill, free_space, small_disk
from tests.sqlite_lock import holding_lock

PARAMS = ChatParams(max_tokens=256, temperature=0.0, top_p=0.9)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "history.sqlite3"


def test_a_conversation_keeps_every_message_with_its_time_model_and_statistics(db: Path
                                                                              ) -> None:
    history = History(db)
    conversation = history.create_conversation(system_prompt="Be brief.", params=PARAMS)
    assert conversation.title == DEFAULT_TITLE
    before = time.time()
    question = history.add_question(conversation.id, "What is\n the capital of France?",
                                    "smollm2-135m", PARAMS)
    history.add_answer(conversation.id, "Paris.", AnswerMeta(
        model="smollm2-135m", params=PARAMS, completion_tokens=3, first_token_seconds=0.12,
        tokens_per_second=88.5, left_out=2))

    reopened = History(db)  # what a restarted app sees
    [stored] = reopened.conversations()
    assert stored.title == "What is"  # the first line of the first question
    assert stored.system_prompt == "Be brief." and stored.params == PARAMS
    asked, answered = reopened.messages(conversation.id)
    assert (asked.role, asked.content, asked.model, asked.params) == (
        "user", question.content, "smollm2-135m", PARAMS)
    assert before <= asked.created_at <= answered.created_at <= time.time()
    assert (answered.role, answered.content, answered.status) == ("assistant", "Paris.",
                                                                 "complete")
    assert (answered.completion_tokens, answered.first_token_seconds,
            answered.tokens_per_second, answered.left_out) == (3, 0.12, 88.5, 2)


def test_the_file_is_in_wal_mode_at_the_current_schema_version(db: Path) -> None:
    history = History(db)
    assert history.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newest_conversation_first_and_a_title_is_kept_once_given(db: Path) -> None:
    history = History(db)
    first = history.create_conversation()
    second = history.create_conversation()
    history.rename(second.id, "  Trip   plans ")
    history.add_question(second.id, "Where to go?", None, PARAMS)  # keeps the given title
    history.add_question(first.id, "x" * 100, None, PARAMS)
    titles = [c.title for c in history.conversations()]
    assert titles == ["x" * 59 + "…", "Trip plans"]
    with pytest.raises(ValueError, match="needs a title"):
        history.rename(first.id, "   ")


def test_search_finds_text_in_titles_and_messages_ignoring_case(db: Path) -> None:
    history = History(db)
    cooking = history.create_conversation()
    history.add_question(cooking.id, "How long to boil an egg?", None, PARAMS)
    history.add_answer(cooking.id, "About 7 minutes for a STRASSE-style egg.", AnswerMeta())
    travel = history.create_conversation()
    history.add_question(travel.id, "Trains from Paris to Berlin", None, PARAMS)
    assert [c.id for c in history.conversations("straße")] == [cooking.id]  # casefolded
    assert [c.id for c in history.conversations("PARIS")] == [travel.id]
    assert [c.id for c in history.conversations("boil")] == [cooking.id]
    assert history.conversations("100%_") == []  # LIKE wildcards are plain text here
    assert len(history.conversations("  ")) == 2


def test_delete_can_be_undone_and_is_purged_after_a_day(db: Path) -> None:
    history = History(db)
    kept = history.create_conversation(title="kept")
    gone = history.create_conversation(title="gone")
    history.add_question(gone.id, "question", None, PARAMS)
    history.delete(gone.id)
    assert [c.title for c in history.conversations()] == ["kept"]
    assert history.conversation(gone.id) is None
    restored = history.undo_delete()
    assert restored is not None and restored.id == gone.id
    assert len(history.messages(gone.id)) == 1
    history.delete(gone.id)
    assert history.purge_deleted(older_than=0) == 1
    assert history.undo_delete() is None
    assert [c.id for c in history.conversations()] == [kept.id]


def test_regenerate_and_edit_replace_what_came_after(db: Path) -> None:
    history = History(db)
    conversation = history.create_conversation()
    q1 = history.add_question(conversation.id, "one", None, PARAMS)
    a1 = history.add_answer(conversation.id, "answer one", AnswerMeta())
    history.add_question(conversation.id, "two", None, PARAMS)
    history.add_answer(conversation.id, "answer two", AnswerMeta())
    history.edit_question(q1.id, "one, edited")
    assert [m.content for m in history.messages(conversation.id)] == ["one, edited"]
    a1 = history.add_answer(conversation.id, "new answer", AnswerMeta())
    assert history.remove_from(conversation.id, a1.id) == 1
    assert [m.content for m in history.messages(conversation.id)] == ["one, edited"]
    with pytest.raises(ValueError, match="not a question"):
        answer = history.add_answer(conversation.id, "x", AnswerMeta())
        history.edit_question(answer.id, "y")


def test_regenerate_keeps_earlier_versions_of_an_answer_to_browse(db: Path) -> None:
    history = History(db)
    conversation = history.create_conversation()
    question = history.add_question(conversation.id, "Name a colour.", None, PARAMS)
    first = history.add_answer(conversation.id, "Red.", AnswerMeta())
    history.set_aside_answer(first.id)  # regenerate
    assert [m.content for m in history.messages(conversation.id)] == ["Name a colour."]
    second = history.add_answer(conversation.id, "Blue.", AnswerMeta(model="m"))
    assert first.question_id == second.question_id == question.id
    assert [m.content for m in history.messages(conversation.id)] == ["Name a colour.",
                                                                       "Blue."]
    assert [v.content for v in history.versions(second)] == ["Red.", "Blue."]
    history.show_version(first.id)  # "Previous version"
    shown = history.messages(conversation.id)
    assert [m.content for m in shown] == ["Name a colour.", "Red."]
    assert [v.id for v in history.versions(shown[-1])] == [first.id, second.id]
    # The conversation goes on from the version on screen; the versions stay apart.
    history.add_question(conversation.id, "Another?", None, PARAMS)
    third = history.add_answer(conversation.id, "Green.", AnswerMeta())
    assert [v.content for v in history.versions(third)] == ["Green."]
    assert [c.message_count for c in history.conversations()] == [4]
    # A search looks at what is on screen, not at the versions set aside.
    assert history.conversations("blue") == []
    # Editing the question drops its answers, every version of them.
    history.edit_question(question.id, "Name a fruit.")
    assert [m.content for m in history.messages(conversation.id)] == ["Name a fruit."]
    with pytest.raises(ValueError, match="not an answer"):
        history.show_version(question.id)


def test_a_schema_3_file_keeps_its_answers_which_become_versions_to_add_to(db: Path
                                                                           ) -> None:
    """The file as opea-chat wrote it before answer versions and pins (schema 3)."""
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as connection:
        for migration in MIGRATIONS[:3]:
            for statement in migration.split(";"):
                if statement.strip():
                    connection.execute(statement)
        connection.execute("PRAGMA user_version = 3")
        connection.execute("INSERT INTO conversations (title, params, created_at, updated_at) "
                           "VALUES ('old talk', '{}', 1.0, 2.0)")
        for role, content in [("user", "Q1"), ("assistant", "A1"), ("user", "Q2"),
                              ("assistant", "A2")]:
            connection.execute("INSERT INTO messages (conversation_id, role, content, "
                               "created_at) VALUES (1, ?, ?, 1.5)", (role, content))
    history = History(db)
    assert history.schema_version() == SCHEMA_VERSION == 4
    [conversation] = history.conversations()
    assert not conversation.pinned and conversation.message_count == 4
    q1, a1, q2, a2 = history.messages(conversation.id)
    assert [m.content for m in (q1, a1, q2, a2)] == ["Q1", "A1", "Q2", "A2"]
    assert (a1.question_id, a2.question_id) == (q1.id, q2.id)
    history.set_aside_answer(a2.id)
    history.add_answer(conversation.id, "A2, again", AnswerMeta())
    assert [v.content for v in history.versions(history.messages(conversation.id)[-1])] == [
        "A2", "A2, again"]
    assert [v.content for v in history.versions(a1)] == ["A1"]


def test_a_pinned_conversation_stays_pinned(db: Path) -> None:
    history = History(db)
    conversation = history.create_conversation()
    history.pin(conversation.id, True)
    assert History(db).conversation(conversation.id).pinned  # type: ignore[union-attr]
    history.pin(conversation.id, False)
    assert not History(db).conversations()[0].pinned


def test_search_gives_the_first_message_that_matches(db: Path) -> None:
    history = History(db)
    talk = history.create_conversation(title="Trip")
    history.add_question(talk.id, "Where to go in May?", None, PARAMS)
    history.add_answer(talk.id, "Lisbon is lovely in May.", AnswerMeta())
    other = history.create_conversation(title="May plans")
    [found] = history.search("LISBON")
    assert (found.conversation.id, found.message) == (talk.id, "Lisbon is lovely in May.")
    assert [(f.conversation.id, f.message) for f in history.search("may")] == [
        (other.id, None), (talk.id, "Where to go in May?")]
    assert len(history.search("")) == 2 and history.search("")[0].message is None


def test_templates_and_settings_are_kept(db: Path) -> None:
    history = History(db)
    history.save_template("Pirate", "Talk like a pirate.")
    history.save_template("pirate", "Arr.")  # a different name: names are exact
    history.save_template("Pirate", "Talk like a pirate, briefly.")
    history.set_setting("answer_cache", False)
    reopened = History(db)
    assert [(t.name, t.system_prompt) for t in reopened.templates()] == [
        ("Pirate", "Talk like a pirate, briefly."), ("pirate", "Arr.")]
    assert reopened.setting("answer_cache", True) is False
    assert reopened.setting("missing", 3) == 3
    reopened.delete_template("pirate")
    assert [t.name for t in reopened.templates()] == ["Pirate"]


def test_a_version_1_file_is_upgraded_in_place_keeping_its_conversations(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as connection:  # the file as opea-chat's first schema left it
        for statement in MIGRATIONS[0].split(";"):
            connection.execute(statement)
        connection.execute("PRAGMA user_version = 1")
        connection.execute("INSERT INTO conversations (title, params, created_at, updated_at) "
                           "VALUES ('old talk', '{}', 1.0, 2.0)")
        connection.execute("INSERT INTO messages (conversation_id, role, content, created_at, "
                           "status) VALUES (1, 'assistant', 'old answer', 1.5, 'stopped')")
    history = History(db)
    assert history.schema_version() == SCHEMA_VERSION == 4
    [conversation] = history.conversations()
    assert (conversation.title, conversation.params) == ("old talk", ChatParams())
    [message] = history.messages(conversation.id)
    assert (message.content, message.status, message.cached) == ("old answer", "stopped",
                                                                 False)
    history.cache_answer("key", "cached text", 2)  # the new table exists
    assert history.cached_answer("key") == CachedAnswer("cached text", 2)
    assert message.sources == () and conversation.use_documents is None


def test_an_answers_sources_and_the_documents_switch_are_kept(db: Path) -> None:
    history = History(db)
    conversation = history.create_conversation()
    history.add_question(conversation.id, "What is the code?", "m", ChatParams())
    sources = (Source(file="plan.pdf", passage="The code is 7-4-1.", score=0.71, page=3),
               Source(file="notes.md", passage="Other.", heading="Setup"))
    history.add_answer(conversation.id, "7-4-1", AnswerMeta(model="m", sources=sources))
    history.set_use_documents(conversation.id, False)
    reopened = History(db)
    assert reopened.messages(conversation.id)[-1].sources == sources
    assert reopened.messages(conversation.id)[0].sources == ()
    found = reopened.conversation(conversation.id)
    assert found is not None and found.use_documents is False


def test_answers_are_cached_by_key(db: Path) -> None:
    history = History(db)
    assert history.cached_answer("k") is None
    history.cache_answer("k", "one", 1)
    history.cache_answer("k", "two", 2)
    assert history.cached_answer("k") == CachedAnswer("two", 2)
    assert history.clear_answer_cache() == 1
    assert history.cached_answer("k") is None


# Failures ---------------------------------------------------------------------------


def test_a_file_from_a_newer_version_is_refused_and_left_untouched(db: Path) -> None:
    History(db).create_conversation(title="mine")
    with sqlite3.connect(db) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = db.read_bytes()
    with pytest.raises(HistoryTooNewError) as caught:
        History(db)
    assert "newer opea-chat" in caught.value.one_line()
    assert "start a fresh history" in caught.value.one_line()
    assert db.read_bytes() == before


def test_a_file_that_is_not_a_database_is_damaged_and_can_be_set_aside(db: Path) -> None:
    db.parent.mkdir(parents=True)
    garbage = random.Random(5).randbytes(64 * 1024)
    db.write_bytes(garbage)
    with pytest.raises(HistoryCorruptError) as caught:
        History(db)
    assert str(db) in caught.value.one_line() and "damaged" in caught.value.one_line()
    kept = set_aside(db, "damaged")
    assert kept.read_bytes() == garbage  # the old file is kept as it was
    fresh = History(db)
    assert fresh.conversations() == []


def test_a_database_with_damaged_pages_is_caught_when_opened(db: Path) -> None:
    history = History(db)
    conversation = history.create_conversation()
    for number in range(300):
        history.add_question(conversation.id, f"question {number} " + "x" * 200, None, PARAMS)
    with sqlite3.connect(db) as connection:  # move everything from the WAL into the file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    data[3 * page: 6 * page] = random.Random(7).randbytes(3 * page)  # inside the b-tree
    db.write_bytes(bytes(data))
    with pytest.raises(HistoryCorruptError, match="damaged"):
        History(db)


def test_a_write_blocked_by_another_process_is_reported_and_works_once_released(
        db: Path) -> None:
    history = History(db, busy_timeout=0.3)
    conversation = history.create_conversation()
    with holding_lock(db, ["BEGIN IMMEDIATE",
                           "INSERT INTO settings VALUES ('holder', '1')"]):
        with pytest.raises(HistoryLockedError) as caught:
            history.add_question(conversation.id, "blocked?", None, PARAMS)
        assert "locked by another program" in caught.value.one_line()
        assert "start a fresh history" in caught.value.one_line()
        assert history.messages(conversation.id) == []  # reading still works (WAL)
    history.add_question(conversation.id, "now?", None, PARAMS)
    assert [m.content for m in history.messages(conversation.id)] == ["now?"]


def test_a_file_locked_exclusively_cannot_be_opened_and_can_be_set_aside(db: Path) -> None:
    History(db).create_conversation(title="old")
    with holding_lock(db, ["PRAGMA locking_mode=EXCLUSIVE", "BEGIN EXCLUSIVE",
                           "INSERT INTO settings VALUES ('holder', '1')"]):
        with pytest.raises(HistoryLockedError):
            History(db, busy_timeout=0.3)
        kept = set_aside(db, "locked")
        fresh = History(db, busy_timeout=0.3)
        assert fresh.conversations() == []
    assert [c.title for c in History(kept).conversations()] == ["old"]


WRITER = """
import sys
from pathlib import Path
from app.history import History, AnswerMeta
from opea.client import ChatParams
from opea.sources import Source
history = History(Path(sys.argv[1]))
conversation = history.create_conversation()
print(conversation.id, flush=True)
number = 0
while True:
    number += 1
    history.add_answer(conversation.id, f"answer {number} " + "y" * 500, AnswerMeta())
    print(number, flush=True)
"""


def test_a_kill_at_any_moment_keeps_every_acknowledged_change(db: Path) -> None:
    randomness = random.Random(11)
    for _ in range(5):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db)],
                                  stdout=subprocess.PIPE, text=True,
                                  cwd=Path(__file__).parent.parent)
        try:
            assert writer.stdout is not None
            conversation_id = int(writer.stdout.readline())
            time.sleep(randomness.uniform(0.05, 0.5))
            os.kill(writer.pid, signal.SIGKILL)  # the writer is our own child
            writer.wait(10)
            acknowledged = [int(line) for line in writer.stdout.read().split() if line]
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait(10)
        history = History(db)  # opens: integrity check passes
        stored = len(history.messages(conversation_id))
        assert acknowledged, "killed before it wrote anything"
        last = acknowledged[-1]
        assert last <= stored <= last + 1  # at most the one in flight, never less
        with sqlite3.connect(db) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_full_disk_is_named_with_its_free_space_and_the_history_comes_back_once_freed(
        tmp_path: Path) -> None:
    with small_disk(tmp_path / "data") as data:
        db = data / "history.sqlite3"
        history = History(db, busy_timeout=0.3)
        kept = [history.create_conversation(title=f"chat {n}") for n in range(3)]
        for conversation in kept:
            history.add_question(conversation.id, f"question of {conversation.title}", None,
                                 PARAMS)
        filler = fill(data)
        for attempt in (lambda: history.add_question(kept[0].id, "x" * 100_000, None, PARAMS),
                        lambda: History(db, busy_timeout=0.3), history.conversations):
            with pytest.raises(HistoryDiskError) as caught:
                attempt()
            said = caught.value.one_line()
            assert f"the disk holding the chat history ({data}) is full: " in said
            assert " MB free" in said and "free some space on that disk, then reload" in said
            assert "fresh" not in said  # the file is fine: never a reason to start over
            assert caught.value.free_bytes is not None and caught.value.free_bytes < 1_000_000
        assert sorted(p.name for p in data.iterdir()) == sorted(
            [".filler", "history.sqlite3", *(p.name for p in data.glob("history.sqlite3-*"))])
        free_space(filler)
        reopened = History(db)
        assert sorted(c.title for c in reopened.conversations()) == ["chat 0", "chat 1", "chat 2"]
        assert [m.content for m in reopened.messages(kept[2].id)] == ["question of chat 2"]
        reopened.add_question(kept[0].id, "and writing works again", None, PARAMS)


def test_a_set_aside_history_file_can_be_imported_back(db: Path) -> None:
    old = History(db)
    first = old.create_conversation(title="from before", system_prompt="Be kind.",
                                    params=PARAMS)
    old.add_question(first.id, "old question", "smollm2-135m", PARAMS)
    old.add_answer(first.id, "old answer", AnswerMeta(
        model="smollm2-135m", completion_tokens=2, sources=(Source("a.md", "text", 0.5),)))
    second = old.create_conversation(title="also before")
    old.delete(second.id)  # deleted conversations stay deleted
    kept = set_aside(db, "old")
    before = kept.read_bytes()

    imported = parse_backup(kept.read_bytes())
    fresh = History(db)
    for conversation, messages in imported:
        fresh.import_conversation(conversation, messages)
    [restored] = fresh.conversations()
    assert (restored.title, restored.system_prompt, restored.params) == (
        "from before", "Be kind.", PARAMS)
    asked, answered = fresh.messages(restored.id)
    assert (asked.content, answered.content, answered.completion_tokens) == (
        "old question", "old answer", 2)
    assert answered.sources == (Source("a.md", "text", 0.5),)
    assert kept.read_bytes() == before  # read from a copy, never changed


def test_a_damaged_set_aside_file_is_refused_in_one_line(db: Path) -> None:
    History(db).create_conversation(title="x")
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    data[100:4096 * 2] = random.Random(3).randbytes(4096 * 2 - 100)
    with pytest.raises(ImportFileError) as caught:
        parse_backup(bytes(data))
    assert caught.value.one_line().startswith("cannot import: the history file is damaged;")
