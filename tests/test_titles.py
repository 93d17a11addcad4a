"""Titles the model writes after a conversation's first answer: what is taken from its reply,
and which conversations get one (on a real history file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.history import AnswerMeta, AnswerStatus, History
from app.titles import INSTRUCTION, SETTING, clean_title, title_messages, wants_title
from opea.client import ChatParams


@pytest.mark.parametrize(("reply", "title"), [
    ('"Paris, the capital of France"', "Paris, the capital of France"),
    ("Title: **Rainbows explained.**\nThe rest is chatter.", "Rainbows explained"),
    ("\n\n  \u201cSea   haiku\u201d  ", "Sea haiku"),
    ("A title that goes on and on for far longer than any title should ever go on",
     "A title that goes on and on for far longer than any title s…"),
    ("...", None),
    ("", None),
    ("  \n ** ", None),
])
def test_the_title_is_the_first_line_of_the_reply_without_decoration(reply: str,
                                                                     title: str | None
                                                                     ) -> None:
    assert clean_title(reply) == title
    assert title is None or len(title) <= 60


def test_the_model_is_shown_the_start_of_the_exchange() -> None:
    [message] = title_messages("Why? " * 500, "Because.")
    assert message["role"] == "user" and message["content"].startswith(INSTRUCTION)
    assert "Because." in message["content"] and len(message["content"]) < 1500


def test_only_a_first_complete_answer_under_the_first_line_title_gets_one(tmp_path: Path
                                                                          ) -> None:
    history = History(tmp_path / "history.sqlite3")
    talk = history.create_conversation()
    history.add_question(talk.id, "What is a rainbow?\nPlease be brief.", None, ChatParams())
    answer = history.add_answer(talk.id, "Light split by raindrops.", AnswerMeta())
    assert wants_title(history, answer) == ("What is a rainbow?\nPlease be brief.",
                                            "Light split by raindrops.")
    history.add_question(talk.id, "And a double one?", None, ChatParams())
    second = history.add_answer(talk.id, "Two reflections.", AnswerMeta())
    assert wants_title(history, second) is None  # not the first answer

    renamed = history.create_conversation()
    history.add_question(renamed.id, "Hi", None, ChatParams())
    history.rename(renamed.id, "My own title")
    assert wants_title(history, history.add_answer(renamed.id, "Hello!", AnswerMeta())) \
        is None

    history.set_setting(SETTING, False)  # turned off in Settings
    assert wants_title(history, answer) is None
    history.set_setting(SETTING, True)

    failed = history.create_conversation()
    history.add_question(failed.id, "Hi", None, ChatParams())
    assert wants_title(history, history.add_answer(
        failed.id, "", AnswerMeta(status=AnswerStatus.FAILED, error="down"))) is None
    stopped = history.create_conversation()
    history.add_question(stopped.id, "Hi", None, ChatParams())
    assert wants_title(history, history.add_answer(
        stopped.id, "Hel", AnswerMeta(status=AnswerStatus.STOPPED))) is None


def test_retitle_only_replaces_the_title_expected(tmp_path: Path) -> None:
    history = History(tmp_path / "history.sqlite3")
    talk = history.create_conversation(title="first line")
    assert history.retitle(talk.id, "Model title", was="first line")
    assert not history.retitle(talk.id, "Another", was="first line")
    assert history.conversation(talk.id).title == "Model title"  # type: ignore[union-attr]
