"""What the page's clicks do, on a real history and a plain dict as the tab's state."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from app import page_state
from app.history import AnswerMeta, AnswerStatus, Conversation, History, Template
from app.page_state import (
    ANSWER_FOR,
    CURRENT,
    EDIT_PROBLEM,
    EDITING,
    UNDO,
    key,
)
from app.prompts import BUILT_IN, all_templates
from opea.client import ChatParams


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / "history.sqlite3")


def test_the_first_visit_opens_a_new_conversation_and_reuses_an_empty_one(
        history: History) -> None:
    state: dict[str, Any] = {}
    first = page_state.current_conversation(history, state, None)
    assert state[CURRENT] == first.id
    again = page_state.current_conversation(history, {}, None)  # another tab, same file
    assert again.id == first.id  # still empty: no second empty conversation
    history.add_question(first.id, "hi", None, ChatParams())
    third = page_state.current_conversation(history, {}, None)
    assert third.id != first.id


def test_a_click_wins_over_the_address_unless_the_address_changed(history: History
                                                                   ) -> None:
    a = history.create_conversation(title="a")
    b = history.create_conversation(title="b")
    state: dict[str, Any] = {}
    assert page_state.current_conversation(history, state, a.id).id == a.id  # opened ?c=a
    page_state.select(state, b.id)  # a click in the sidebar; the address still says a
    assert page_state.current_conversation(history, state, a.id).id == b.id
    assert page_state.current_conversation(history, state, b.id).id == b.id  # now ?c=b
    # The user went back to ?c=a (or opened a bookmark): the address wins.
    assert page_state.current_conversation(history, state, a.id).id == a.id
    assert page_state.current_conversation(history, state, 999).id == a.id  # unknown id
    history.delete(a.id)
    assert page_state.current_conversation(history, state, a.id).id != a.id


def test_the_sidebar_lists_conversations_with_messages_only(history: History) -> None:
    history.create_conversation(title="empty")  # the welcome page, not a row
    used = history.create_conversation(title="used")
    history.add_question(used.id, "hi", None, ChatParams())
    assert [c.title for c in page_state.listed(history.conversations())] == ["used"]


def test_an_example_prompt_is_asked_in_the_conversation(history: History) -> None:
    state: dict[str, Any] = {}
    conversation = history.create_conversation(params=ChatParams(max_tokens=99))
    page_state.ask(history, state, conversation.id, "Write a haiku about the sea.", "m")
    [question] = history.messages(conversation.id)
    assert (question.role, question.content, question.model) == (
        "user", "Write a haiku about the sea.", "m")
    assert state[page_state.ANSWER_FOR] == conversation.id
    page_state.ask(history, state, 12345, "gone", "m")  # deleted meanwhile: nothing happens


def test_new_conversation_does_not_pile_up_empty_ones(history: History) -> None:
    state: dict[str, Any] = {}
    first = page_state.current_conversation(history, state, None)
    page_state.new_conversation(history, state)
    assert state[CURRENT] == first.id
    history.add_question(first.id, "hi", None, ChatParams())
    page_state.new_conversation(history, state)
    assert state[CURRENT] != first.id and len(history.conversations()) == 2


def test_delete_then_undo_brings_the_conversation_back(history: History) -> None:
    conversation = history.create_conversation(title="precious")
    state: dict[str, Any] = {CURRENT: conversation.id}
    page_state.delete(history, state, conversation)
    assert state[UNDO] == "precious" and CURRENT not in state
    assert history.conversations() == []
    page_state.undo_delete(history, state)
    assert UNDO not in state and state[CURRENT] == conversation.id
    assert [c.title for c in history.conversations()] == ["precious"]


def test_rename_takes_the_typed_title_and_ignores_a_blank_one(history: History) -> None:
    conversation = history.create_conversation()
    state: dict[str, Any] = {key("title", conversation.id): "  Holiday plans "}
    page_state.rename(history, state, conversation.id)
    state[key("title", conversation.id)] = "   "
    page_state.rename(history, state, conversation.id)
    assert [c.title for c in history.conversations()] == ["Holiday plans"]


def test_retry_drops_the_failed_answer_and_asks_again(history: History) -> None:
    conversation = history.create_conversation()
    history.add_question(conversation.id, "q", None, ChatParams())
    answer = history.add_answer(conversation.id, "", AnswerMeta(status=AnswerStatus.FAILED))
    state: dict[str, Any] = {}
    page_state.ask_again(history, state, conversation.id, answer.id)
    assert [m.role for m in history.messages(conversation.id)] == ["user"]
    assert state[ANSWER_FOR] == conversation.id
    again = history.add_answer(conversation.id, "a", AnswerMeta())
    assert history.versions(again) == [again]  # the failed one is gone, not a version


def test_regenerate_keeps_the_answer_as_a_version_and_asks_again(history: History) -> None:
    conversation = history.create_conversation()
    history.add_question(conversation.id, "q", None, ChatParams())
    first = history.add_answer(conversation.id, "a", AnswerMeta())
    state: dict[str, Any] = {}
    page_state.regenerate(history, state, conversation.id, first.id)
    assert [m.role for m in history.messages(conversation.id)] == ["user"]
    assert state[ANSWER_FOR] == conversation.id
    second = history.add_answer(conversation.id, "b", AnswerMeta())
    versions = history.versions(second)
    assert page_state.version_of(versions, second.id) == (first.id, 2, None)
    assert page_state.version_of(versions, first.id) == (None, 1, second.id)
    assert page_state.version_of([first], first.id) == (None, 1, None)


def test_a_search_snippet_shows_the_words_around_the_match() -> None:
    text = ("The first part of this answer talks about other things entirely, and only "
            "much later does it say that Lisbon is lovely in May, when the weather is "
            "mild and the crowds are thin. Then it goes on about trains.")
    shown = page_state.snippet(text, "LISBON", width=60)
    assert "Lisbon is lovely" in shown and shown.startswith("…") and shown.endswith("…")
    assert len(shown) <= 62
    assert page_state.snippet("Short\n  text", "text") == "Short text"
    assert page_state.snippet(text, "absent", width=30).startswith("The first part")


def test_pinned_conversations_come_first_whatever_their_day() -> None:
    now = datetime.datetime(2026, 3, 10, 15, 0).timestamp()
    old = Conversation(id=1, title="old", system_prompt="", params=ChatParams(),
                       created_at=0.0, updated_at=now - 90 * 86400, message_count=1,
                       pinned=True)
    new = Conversation(id=2, title="new", system_prompt="", params=ChatParams(),
                       created_at=0.0, updated_at=now, message_count=1)
    assert [(label, [c.title for c in group])
            for label, group in page_state.by_date([new, old], now)] == [
        ("Pinned", ["old"]), ("Today", ["new"])]


def test_an_edit_replaces_the_question_and_what_followed_unless_it_is_empty(
        history: History) -> None:
    conversation = history.create_conversation()
    question = history.add_question(conversation.id, "old", None, ChatParams())
    history.add_answer(conversation.id, "a", AnswerMeta())
    state: dict[str, Any] = {}
    page_state.start_edit(state, question.id, question.content)
    assert state[EDITING] == question.id and state[key("edit", question.id)] == "old"
    state[key("edit", question.id)] = "   "
    page_state.send_edit(history, state, conversation.id, question.id)
    assert state[EDIT_PROBLEM] == "Type a question first."
    assert [m.content for m in history.messages(conversation.id)] == ["old", "a"]  # kept
    state[key("edit", question.id)] = "new"
    page_state.send_edit(history, state, conversation.id, question.id)
    assert [m.content for m in history.messages(conversation.id)] == ["new"]
    assert state[ANSWER_FOR] == conversation.id and EDITING not in state


def test_settings_and_templates_are_saved_per_conversation(history: History) -> None:
    one = history.create_conversation()
    two = history.create_conversation()
    state: dict[str, Any] = {}
    page_state.init_settings(state, one)
    keys = page_state.settings_keys(one)
    state[keys["temperature"]] = 0.0
    state[keys["max_tokens"]] = 128
    state[keys["template"]] = "Coder"
    page_state.apply_template(history, state, one, all_templates(history.templates()))
    stored = history.conversation(one.id)
    assert stored is not None
    assert stored.system_prompt == next(t for t in BUILT_IN if t.name == "Coder").system_prompt
    assert stored.params == ChatParams(max_tokens=128, temperature=0.0, top_p=0.95)
    untouched = history.conversation(two.id)
    assert untouched is not None and untouched.params == ChatParams()


def test_a_saved_template_with_a_built_in_name_replaces_it() -> None:
    mine = [Template("Concise", "Mine."), Template("Zed", "z")]
    names = [(t.name, t.system_prompt) for t in all_templates(mine)]
    assert ("Concise", "Mine.") in names and names[-1] == ("Zed", "z")
    assert sum(name == "Concise" for name, _ in names) == 1


def test_a_saved_template_is_there_for_the_next_drawing_of_the_list(history: History) -> None:
    state: dict[str, Any] = {page_state.TEMPLATE_NAME: "  Pirate ", "system-1": "Say arr."}
    page_state.save_template(history, state, "system-1")
    assert [(t.name, t.system_prompt) for t in history.templates()] == [("Pirate", "Say arr.")]
    assert state[page_state.TOAST] == "Saved template “Pirate”."
    state = {page_state.TEMPLATE_NAME: "   ", "system-1": "x"}
    page_state.save_template(history, state, "system-1")  # no name: nothing saved
    assert len(history.templates()) == 1 and page_state.TOAST not in state


def test_defaults_set_in_settings_start_each_new_conversation_across_launches(
        tmp_path: Path) -> None:
    history = History(tmp_path / "history.sqlite3")
    state: dict[str, Any] = {}
    page_state.init_defaults(history, state)
    assert state[page_state.DEFAULT_KEYS["system"]] == ""
    state[page_state.DEFAULT_KEYS["system"]] = "Answer like a pirate."
    state[page_state.DEFAULT_KEYS["temperature"]] = 0.2
    state[page_state.DEFAULT_KEYS["max_tokens"]] = 256
    page_state.save_defaults(history, state)
    relaunched = History(tmp_path / "history.sqlite3")  # the next launch reads the file
    page_state.new_conversation(relaunched, state := {})
    conversation = relaunched.conversation(state[page_state.CURRENT])
    assert conversation is not None
    assert conversation.system_prompt == "Answer like a pirate."
    assert (conversation.params.temperature, conversation.params.max_tokens) == (0.2, 256)
    fresh: dict[str, Any] = {}
    page_state.init_defaults(relaunched, fresh)  # a new tab shows the stored defaults
    assert fresh[page_state.DEFAULT_KEYS["system"]] == "Answer like a pirate."


def test_new_defaults_apply_to_the_empty_conversation_on_screen(history: History) -> None:
    state: dict[str, Any] = {}
    shown = page_state.current_conversation(history, state, None)
    state[page_state.key("system", shown.id)] = "old panel value"
    page_state.init_defaults(history, state)
    state[page_state.DEFAULT_KEYS["system"]] = "Be kind."
    page_state.save_defaults(history, state)
    updated = history.conversation(shown.id)
    assert updated is not None and updated.system_prompt == "Be kind."
    assert state[page_state.key("system", shown.id)] == "Be kind."  # the panel shows it


def test_the_sidebar_groups_conversations_by_the_day_they_were_last_used() -> None:
    now = datetime.datetime(2026, 3, 10, 15, 0).timestamp()

    def used(days: float, title: str) -> Conversation:
        return Conversation(id=int(days * 10), title=title, system_prompt="",
                            params=ChatParams(), created_at=0.0,
                            updated_at=now - days * 86400, message_count=1)

    conversations = [used(0.1, "a"), used(1, "b"), used(3, "c"), used(12, "d"),
                     used(90, "e")]
    assert [(label, [c.title for c in group])
            for label, group in page_state.by_date(conversations, now)] == [
        ("Today", ["a"]), ("Yesterday", ["b"]), ("Previous 7 days", ["c"]),
        ("Previous 30 days", ["d"]), ("Older", ["e"])]
