"""The chat page through Streamlit's AppTest, against the real llama.cpp server with SmolLM2
and the real OPEA megaservice: what a user sees after each action."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from app import titles
from app.history import FILE_NAME, AnswerMeta, History, set_aside
from app.render import safe_markdown
from app.server import PAGE_SCRIPT
from launcher.ports import pick_free_port
from launcher.session_file import write_session
from opea.client import ChatParams
from opea.stack import MEGASERVICE_URL_VARIABLE
from tests.full_disk import fill, free_space, small_disk
from tests.http_stub import reply, serve
from tests.services import llm_server, megaservice
from tests.session_records import session_record
from tests.sqlite_lock import holding_lock

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    logs = tmp_path_factory.mktemp("page-logs")
    with llm_server(smollm2, logs, context_size=1024) as llm, megaservice(llm, logs) as url:
        yield {"llm": llm, "megaservice": url}


class Page:
    """One browser tab on the app, for one OPEA_CHAT_HOME."""

    def __init__(self, home: Path, conversation: int | None = None):
        # A script run waits for a whole answer from the real model: on a busy 2-core
        # machine SmolLM2 drops below 1 token/s, and 180 s timed out there.
        self.at = AppTest.from_file(str(PAGE_SCRIPT), default_timeout=420)
        if conversation is not None:
            self.at.query_params["c"] = str(conversation)
        self.home = home
        self.run()

    def run(self) -> Page:
        self.at.run()
        assert not self.at.exception, [e.value for e in self.at.exception]
        return self

    def ask(self, text: str) -> Page:
        # What the page showed instead, should its input be missing (seen once in CI).
        assert len(self.at.chat_input), (
            [e.value for e in self.at.error], [w.value for w in self.at.warning],
            [m.value for m in self.at.markdown][:10])
        self.at.chat_input[0].set_value(text)
        return self.run()

    def click(self, key: str) -> Page:
        self.at.button(key=key).click()
        return self.run()

    @property
    def messages(self) -> list[tuple[str, str]]:
        return [(m.name, m.markdown[0].value if len(m.markdown) else "")
                for m in self.at.chat_message]

    def captions(self, index: int) -> list[str]:
        return [c.value for c in self.at.chat_message[index].caption]

    def errors(self, index: int | None = None) -> list[str]:
        where = self.at if index is None else self.at.chat_message[index]
        return [e.value for e in where.error]

    @property
    def conversation_id(self) -> int:
        return int(self.at.query_params["c"][0])

    @property
    def sidebar_titles(self) -> list[str]:
        return [b.label for b in self.at.sidebar.button if b.key and b.key.startswith("open-")]

    def history(self) -> History:
        return History(self.home / "data" / FILE_NAME)


@pytest.fixture
def session(home_with_model: Path, smollm2: Path, stack: dict[str, str],
            monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The session file a launcher would write for this stack."""
    record = session_record(runtime="local", context_size=1024, model_path=str(smollm2),
                            urls={"llm": stack["llm"], "megaservice": stack["megaservice"]})
    write_session(home_with_model / "state" / "session.json", record)
    monkeypatch.setenv(MEGASERVICE_URL_VARIABLE, stack["megaservice"])
    # Titles stay the first line of the first question, which these tests look for; the
    # model's titles have a test of their own.
    History(home_with_model / "data" / FILE_NAME).set_setting(titles.SETTING, False)
    return record.to_json()


def set_temperature_zero(page: Page) -> None:
    page.at.slider(key=f"temperature-{page.conversation_id}").set_value(0.0)
    page.run()


def test_ask_see_the_answer_with_its_measurements_and_find_it_after_a_reload(
        session: dict[str, Any], home_with_model: Path) -> None:
    page = Page(home_with_model)
    assert page.at.title[0].value == "What can I help with?"  # the welcome state
    assert any("**smollm2-135m** · ready" in c.value for c in page.at.caption)
    # No address on the chat page itself (the sidebar's Model panel lists the services).
    assert not [c.value for c in page.at.main.caption
                if session["urls"]["megaservice"] in c.value]
    page.ask("What is the capital of France?")
    (role_q, question), (role_a, answer) = page.messages
    assert (role_q, question) == ("user", "What is the capital of France?")
    assert role_a == "assistant" and answer.strip()
    stats = page.captions(1)[-1]
    assert "smollm2-135m" in stats and "tokens/s" in stats and "first token" in stats
    assert page.sidebar_titles == ["What is the capital of France?"]
    conversation = page.conversation_id

    reloaded = Page(home_with_model, conversation)  # the same address, a new session
    assert reloaded.messages == page.messages
    fresh = Page(home_with_model)  # a new tab: a new conversation, the old one listed
    assert fresh.messages == [] and "What is the capital of France?" in fresh.sidebar_titles
    fresh.click(f"open-{conversation}")
    assert fresh.messages == page.messages


def test_model_panel_shows_runtime_model_device_and_health(session: dict[str, Any],
                                                           home_with_model: Path) -> None:
    page = Page(home_with_model)
    panel = page.at.sidebar.expander[0]
    facts = panel.markdown[0].value
    assert "**Runtime:** local" in facts and "**Model:** smollm2-135m" in facts
    assert session["model"]["path"] in facts and "**Context:** 1,024 tokens" in facts
    # No launcher owns this stack (the session file is written by the test), so the panel
    # checks the megaservice it talks to itself; with a launcher, the launcher reports the
    # device and every service (tests/test_session_commands.py, tests/test_desktop.py).
    assert "**Device:** unknown (no running launcher)" in facts
    health = [c.value for c in panel.caption]
    assert any(f"megaservice · {session['urls']['megaservice']} · healthy" in line
               for line in health)
    assert "quit" not in [b.key for b in page.at.sidebar.button]  # no launcher to quit
    page.ask("Say hi.")
    assert "tokens/s" in page.at.sidebar.expander[0].metric[0].value


def test_conversations_can_be_created_renamed_searched_deleted_and_restored(
        session: dict[str, Any], home_with_model: Path) -> None:
    page = Page(home_with_model)
    page.ask("Tell me about cats.")
    cats = page.conversation_id
    page.click("new")
    assert page.messages == [] and page.conversation_id != cats
    page.ask("Tell me about dogs.")
    dogs = page.conversation_id
    assert page.sidebar_titles == ["Tell me about dogs.", "Tell me about cats."]

    # The rename field holds the current title (the one the first question gave).
    assert page.at.text_input(key=f"title-{dogs}").value == "Tell me about dogs."
    page.at.text_input(key=f"title-{dogs}").set_value("Dogs")
    page.run()
    assert page.sidebar_titles == ["Dogs", "Tell me about cats."]
    assert page.at.text_input(key=f"title-{dogs}").value == "Dogs"
    page.at.text_input(key="search").set_value("CATS")
    page.run()
    assert page.sidebar_titles == ["Tell me about cats."]
    # Under the title, the words around the match in the message that has it.
    assert "Tell me about cats." in [c.value for c in page.at.sidebar.caption]
    page.at.text_input(key="search").set_value("no such text anywhere")
    page.run()
    assert page.sidebar_titles == []
    assert "No conversation contains that text." in [c.value for c in page.at.sidebar.caption]
    page.at.text_input(key="search").set_value("")
    page.run()

    # Pinned: listed first, above the newer conversation, after a reload too.
    page.click(f"open-{cats}")
    assert page.at.button(key="pin").label == "Pin conversation"
    page.click("pin")
    assert page.sidebar_titles == ["Tell me about cats.", "Dogs"]
    assert "Pinned" in [c.value for c in page.at.sidebar.caption]
    assert Page(home_with_model, cats).sidebar_titles == ["Tell me about cats.", "Dogs"]
    assert page.at.button(key="pin").label == "Unpin conversation"
    page.click("pin")
    assert page.sidebar_titles == ["Dogs", "Tell me about cats."]
    page.click(f"open-{dogs}")

    page.click("delete")
    assert page.sidebar_titles == ["Tell me about cats."]  # and the welcome page shows
    assert "Deleted “Dogs”." in [i.value for i in page.at.sidebar.info]
    page.click("undo")
    assert page.conversation_id == dogs and page.sidebar_titles[0] == "Dogs"
    assert page.messages[0] == ("user", "Tell me about dogs.")


def test_the_model_names_the_conversation_after_its_first_answer(
        session: dict[str, Any], home_with_model: Path) -> None:
    page = Page(home_with_model)
    page.at.toggle(key="titles_on").set_value(True)
    page.run()
    question = "What is the tallest mountain on Earth? Answer briefly."
    page.ask(question)
    assert page.messages[1][1].strip()  # the answer is there, whatever the title does
    history = page.history()
    deadline = time.monotonic() + 240
    while (conversation := history.conversation(page.conversation_id)) is not None \
            and conversation.title == question:
        assert time.monotonic() < deadline, "the model's title never came"
        time.sleep(0.5)
    assert conversation is not None and 0 < len(conversation.title) <= 60
    page.run()
    assert page.sidebar_titles == [conversation.title]
    assert page.at.text_input(key=f"title-{page.conversation_id}").value == conversation.title
    # Only after the first answer: the next one leaves the title alone.
    page.ask("And the second tallest?")
    again = history.conversation(page.conversation_id)
    assert again is not None and again.title == conversation.title


def test_a_template_fills_the_system_prompt_and_parameters_apply_per_conversation(
        session: dict[str, Any], home_with_model: Path) -> None:
    page = Page(home_with_model)
    conversation = page.conversation_id
    page.at.selectbox(key=f"template-{conversation}").set_value("Concise")
    page.run()
    prompt = page.at.text_area(key=f"system-{conversation}").value
    assert prompt and prompt.startswith("Answer in as few words as possible")
    page.at.number_input(key=f"max_tokens-{conversation}").set_value(16)
    set_temperature_zero(page)
    page.ask("Describe the ocean in detail.")
    history = page.history()
    stored = history.conversation(conversation)
    assert stored is not None and stored.system_prompt == prompt
    answer = history.messages(conversation)[-1]
    assert answer.params == ChatParams(max_tokens=16, temperature=0.0, top_p=0.95)
    assert answer.completion_tokens is not None and answer.completion_tokens <= 16

    page.at.text_input(key="template_name").set_value("Short answers")
    page.run()
    page.click("save_template")
    # At once, in the list of this conversation's panel (no other click needed).
    assert "Short answers" in page.at.selectbox(key=f"template-{conversation}").options
    page.click("new")
    assert "Short answers" in page.at.selectbox(key=f"template-{page.conversation_id}").options
    assert page.at.text_area(key=f"system-{page.conversation_id}").value == ""


def test_regenerate_keeps_earlier_versions_to_browse_and_edit_resends_the_question(
        session: dict[str, Any], home_with_model: Path) -> None:
    page = Page(home_with_model)
    page.ask("Name an animal.")
    first_answer = page.history().messages(page.conversation_id)[-1]
    assert f"previous-{first_answer.id}" not in [b.key for b in page.at.button]  # one only
    page.click(f"regenerate-{first_answer.id}")
    stored = page.history().messages(page.conversation_id)
    assert [m.role for m in stored] == ["user", "assistant"]
    second = stored[-1]
    assert second.id != first_answer.id  # a new answer on screen
    assert "2/2" in page.captions(1)
    assert page.at.button(key=f"next-{second.id}").disabled
    page.click(f"previous-{second.id}")
    assert page.messages[1] == ("assistant", safe_markdown(first_answer.content))
    assert "1/2" in page.captions(1)
    assert page.at.button(key=f"previous-{first_answer.id}").disabled
    page.click(f"next-{first_answer.id}")
    assert "2/2" in page.captions(1)
    assert page.messages[1] == ("assistant", safe_markdown(second.content))
    question = stored[0]
    page.click(f"edit-button-{question.id}")
    # The box is in a form: its text goes with the form's Send.
    page.at.text_area(key=f"edit-{question.id}").set_value("Name a planet.")
    page.click(f"send-edit-{question.id}")
    assert page.messages[0] == ("user", "Name a planet.")
    assert page.messages[1][0] == "assistant" and page.messages[1][1].strip()
    assert len(page.messages) == 2


def test_a_service_that_is_down_shows_the_error_in_place_and_retry_answers(
        session: dict[str, Any], home_with_model: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{pick_free_port()}"
    monkeypatch.setenv(MEGASERVICE_URL_VARIABLE, dead)
    page = Page(home_with_model)
    page.ask("Are you there?")
    assert page.messages[0] == ("user", "Are you there?")  # the question is kept
    [error] = page.errors(1)
    assert f"cannot reach the OPEA megaservice at {dead}" in error
    assert "opea-chat launch" in error
    failed = page.history().messages(page.conversation_id)[-1]
    monkeypatch.setenv(MEGASERVICE_URL_VARIABLE, session["urls"]["megaservice"])
    page.click(f"retry-{failed.id}")
    assert page.errors() == []
    assert page.messages[1][0] == "assistant" and page.messages[1][1].strip()


@pytest.mark.parametrize(("megaservice_reply", "shown"), [
    (reply(503, b"LLM still loading"), "answered HTTP 503: LLM still loading"),
    (reply(200, b"data: [DONE]\n\n", "text/event-stream"), "the model returned an empty answer"),
])
def test_http_errors_and_empty_answers_show_in_place_with_retry(
        home_with_model: Path, monkeypatch: pytest.MonkeyPatch, megaservice_reply: Any,
        shown: str) -> None:
    with serve(megaservice_reply) as url:
        monkeypatch.setenv(MEGASERVICE_URL_VARIABLE, url)
        page = Page(home_with_model)
        page.ask("Hello?")
    assert page.messages[0] == ("user", "Hello?")
    [error] = page.errors(1)
    assert shown in error
    failed = page.history().messages(page.conversation_id)[-1]
    assert page.at.chat_message[1].button(key=f"retry-{failed.id}").label == "Retry"


def test_a_question_without_an_answer_offers_retry(session: dict[str, Any],
                                                   home_with_model: Path) -> None:
    # As left by a browser closed (or an app killed) while the answer streamed.
    history = Page(home_with_model).history()
    conversation = history.create_conversation()
    question = history.add_question(conversation.id, "Still there?", None, ChatParams())
    page = Page(home_with_model, conversation.id)
    assert "No answer was saved for this question." in [w.value for w in page.at.warning]
    page.click(f"retry-{question.id}")
    assert page.messages[1][0] == "assistant" and page.messages[1][1].strip()


def test_empty_and_oversized_messages_are_not_sent_and_not_lost(
        session: dict[str, Any], home_with_model: Path) -> None:
    page = Page(home_with_model)
    page.ask("   \n  ")
    assert [w.value for w in page.at.warning] == ["Type a question first."]
    huge = "a" * 100_000
    page.ask(huge)
    [warning] = [w.value for w in page.at.warning]
    assert "100,000 characters" in warning and "the limit is 20,000" in warning
    assert page.at.code[0].value == huge  # shown back, so it can be copied and shortened
    assert page.messages == [] and page.history().messages(page.conversation_id) == []


def test_a_question_too_long_for_the_context_fails_in_place_with_the_reason(
        session: dict[str, Any], home_with_model: Path) -> None:
    page = Page(home_with_model)
    question = "Summarise this: " + " ".join(["lorem ipsum dolor sit amet"] * 500)
    page.ask(question)
    # A long question is shown collapsed to its start, the whole of it in an expander.
    role, start = page.messages[0]
    assert role == "user" and start.endswith(" …") and question.startswith(start[:-2])
    assert page.at.chat_message[0].markdown[-1].value == question
    [error] = page.errors(1)
    assert "1,024-token context" in error and "--context-size" in error


def test_turns_left_out_to_fit_the_context_are_announced(
        session: dict[str, Any], home_with_model: Path) -> None:
    history = Page(home_with_model).history()
    conversation = history.create_conversation()
    for number in range(10):
        history.add_question(conversation.id, f"Question {number}: " + "tell me more " * 30,
                             None, ChatParams())
        history.add_answer(conversation.id, "Here is more. " * 30, AnswerMeta())
    page = Page(home_with_model, conversation.id)
    page.ask("And finally?")
    captions = page.captions(len(page.messages) - 1)
    assert any("earlier turns left out to fit the model's context window" in c
               for c in captions), captions
    assert page.errors() == []


def test_identical_questions_at_temperature_zero_come_from_the_cache_unless_turned_off(
        session: dict[str, Any], home_with_model: Path) -> None:
    page = Page(home_with_model)
    set_temperature_zero(page)
    page.ask("Name a fruit.")
    assert "cached" not in page.captions(1)[-1]
    for cache_on, cached in ((True, True), (False, False)):
        page.at.toggle(key="cache_on").set_value(cache_on)
        page.run()
        page.click("new")
        set_temperature_zero(page)
        page.ask("Name a fruit.")
        assert page.captions(1)[-1].endswith(" · cached") is cached


def test_a_locked_history_says_so_and_a_fresh_one_can_be_started(
        session: dict[str, Any], home_with_model: Path) -> None:
    db = home_with_model / "data" / FILE_NAME
    History(db).create_conversation(title="kept safe")
    with holding_lock(db, ["PRAGMA locking_mode=EXCLUSIVE", "BEGIN EXCLUSIVE",
                           "INSERT INTO settings VALUES ('x', '1')"]):
        page = Page(home_with_model)
        [error] = page.errors()
        assert f"the chat history {db} is locked by another program" in error
        assert "start a fresh history (the old file is kept)" in error
        page.click("fresh_history")
        assert page.errors() == []
        assert any("the old file is kept as" in s.value for s in page.at.success)
        page.ask("Hello again.")
        assert page.messages[1][1].strip()
    [kept] = db.parent.glob(f"{FILE_NAME}.old-*[0-9]")
    assert [c.title for c in History(kept).conversations()] == ["kept safe"]


def test_a_damaged_history_says_so_and_a_fresh_one_keeps_the_old_file(
        session: dict[str, Any], home_with_model: Path) -> None:
    db = home_with_model / "data" / FILE_NAME
    db.parent.mkdir(parents=True, exist_ok=True)
    db.write_bytes(b"this is not a database at all" * 1000)
    page = Page(home_with_model)
    [error] = page.errors()
    assert "is damaged" in error and "start a fresh history" in error
    page.click("fresh_history")
    page.ask("Hi.")
    assert page.messages[1][1].strip()
    [kept] = db.parent.glob(f"{FILE_NAME}.old-*[0-9]")
    assert kept.read_bytes() == b"this is not a database at all" * 1000


def test_a_question_that_cannot_be_saved_is_shown_back_not_lost(
        session: dict[str, Any], home_with_model: Path) -> None:
    page = Page(home_with_model)
    db = home_with_model / "data" / FILE_NAME
    with holding_lock(db, ["BEGIN IMMEDIATE", "INSERT INTO settings VALUES ('x', '1')"]):
        page.ask("A question worth keeping")  # waits out the history's busy timeout
        assert any("locked by another program" in e for e in page.errors())
        assert [c.value for c in page.at.code] == ["A question worth keeping"]


def test_a_full_disk_is_named_never_offers_a_fresh_history_and_nothing_is_lost(
        home: Path) -> None:
    with small_disk(home / "data") as data:
        db = data / FILE_NAME
        history = History(db)
        for title in ("first chat", "second chat"):
            conversation = history.create_conversation(title=title)
            history.add_question(conversation.id, f"question of {title}", None, ChatParams())
        page = Page(home)
        assert sorted(page.sidebar_titles) == ["first chat", "second chat"]
        filler = fill(data)

        page.ask("A question asked on a full disk")
        [error] = page.errors()
        assert f"the disk holding the chat history ({data}) is full: 0.0 MB free" in error
        assert "free some space on that disk, then reload" in error
        assert [c.value for c in page.at.code] == ["A question asked on a full disk"]
        labels = [b.label for b in page.at.button]
        assert "Start a fresh history" not in labels and "Try again" in labels
        assert "empty answer" not in error

        reloaded = Page(home)  # a reload on the full disk: the same, and nothing moved
        [error] = reloaded.errors()
        assert "is full" in error and "fresh" not in error
        assert "Start a fresh history" not in [b.label for b in reloaded.at.button]
        assert not list(data.glob(f"{FILE_NAME}.*-*"))  # never set aside

        free_space(filler)
        reloaded.click("retry_history")
        assert reloaded.errors() == []
        assert sorted(reloaded.sidebar_titles) == ["first chat", "second chat"]


def test_an_answer_that_cannot_be_stored_on_a_full_disk_says_so_and_is_shown(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def filling_model(request: BaseHTTPRequestHandler) -> None:
        request.rfile.read(int(request.headers.get("Content-Length") or 0))
        if request.command == "POST":  # a question, not the page's health check
            fill(home / "data")  # the disk fills while the model writes
        body = b"data: b'Kept on screen.'\n\ndata: [DONE]\n\n"
        request.send_response(200)
        request.send_header("Content-Type", "text/event-stream")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    with small_disk(home / "data"), serve(filling_model) as url:
        monkeypatch.setenv(MEGASERVICE_URL_VARIABLE, url)
        page = Page(home)
        assert page.errors() == [], [m.value for m in page.at.markdown]
        page.ask("Say something.")
        errors = page.errors()
        assert any(e.startswith("The answer could not be saved: the disk holding the chat "
                                "history") and "is full" in e for e in errors), errors
        assert "Kept on screen." in [m.value for m in page.at.markdown]
        assert not any("empty answer" in e for e in errors)


def odd_model(request: BaseHTTPRequestHandler) -> None:
    """A megaservice whose model emits control characters, invalid UTF-8 and HTML."""
    request.rfile.read(int(request.headers.get("Content-Length") or 0))
    events = [b"data: b'Bell\\x07 nul\\x00 esc\\x1b'\n\n", b"data: b' bad \\xff\\xfe'\n\n",
              b"data: b' <script>alert(1)</script> \\xe2\\x80'\n\n", b"data: b'\\x94 done'\n\n",
              b"data: [DONE]\n\n"]
    body = b"".join(events)
    request.send_response(200)
    request.send_header("Content-Type", "text/event-stream")
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def test_control_characters_and_invalid_utf8_from_the_model_render_as_symbols(
        home_with_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(odd_model) as url:
        monkeypatch.setenv(MEGASERVICE_URL_VARIABLE, url)
        page = Page(home_with_model)
        page.ask("Say something odd.")
    shown = page.messages[1][1]
    assert shown == "Bell␇ nul␀ esc␛ bad \ufffd\ufffd <script>alert(1)</script> — done"
    stored = page.history().messages(page.conversation_id)[-1].content
    assert "\x00" in stored  # kept as the model sent it; only the display is made safe


def test_import_adds_the_conversations_of_a_backup(session: dict[str, Any],
                                                   home_with_model: Path) -> None:
    backup = {"format": "opea-chat", "version": 1, "conversations": [
        {"title": "From backup", "messages": [{"role": "user", "content": "old q"},
                                              {"role": "assistant", "content": "old a"}]}]}
    page = Page(home_with_model)
    page.at.file_uploader(key="import-0").set_value(
        ("backup.json", json.dumps(backup).encode(), "application/json"))
    page.run()
    assert "Imported 1 conversation." in [s.value for s in page.at.success]
    assert page.messages == [("user", "old q"), ("assistant", "old a")]
    page.at.file_uploader(key="import-1").set_value(("bad.json", b"{oops", "application/json"))
    page.run()
    assert any("the file is not JSON" in e for e in page.errors())
    # A history set aside earlier ("Start a fresh history" keeps it as .old-*) comes back.
    earlier = History(home_with_model / "earlier" / FILE_NAME)
    kept = earlier.create_conversation(title="Set aside")
    earlier.add_question(kept.id, "older q", None, ChatParams())
    old_file = set_aside(earlier.path, "old")
    page.at.file_uploader(key="import-1").set_value(
        (old_file.name, old_file.read_bytes(), "application/octet-stream"))
    page.run()
    assert "Imported 1 conversation." in [s.value for s in page.at.success]
    assert page.messages == [("user", "older q")]
    with sqlite3.connect(home_with_model / "data" / FILE_NAME) as connection:
        assert connection.execute("SELECT count(*) FROM conversations").fetchone()[0] == 3
