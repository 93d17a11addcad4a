"""End to end in a real browser (Debian Chromium via Playwright) against `opea-chat launch`
with SmolLM2: chat, stop, switch, reload, export and import, model output that tries to
run code, themes and a narrow window. Screenshots land in test-artifacts/browser/."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, expect

from app import titles
from app.history import FILE_NAME, History
from launcher.local_runtime import APP_SCRIPT
from launcher.ports import pick_free_port
from opea.stack import CHAT_APP, MEGASERVICE_URL_VARIABLE
from tests.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ChatPage,
    accessibility_problems,
    chromium,
    screenshot,
)
from tests.http_stub import serve
from tests.launched import Launched
from tests.services import megaservice, running, service_command

pytestmark = pytest.mark.integration
READY = r"^Ready: (http://127\.0\.0\.1:\d+)$"
STREAMED_TWICE = """() => {
    const answers = [...document.querySelectorAll('[data-testid="stChatMessage"]')].filter(
        m => m.querySelector('[data-testid="stChatMessageAvatarAssistant"]'));
    const text = answers.length ? answers[answers.length - 1].querySelector(
        '[data-testid="stMarkdownContainer"]')?.innerText : undefined;
    window.__streamed = window.__streamed || new Set();
    if (text && text.includes("\u258c")) window.__streamed.add(text);
    return window.__streamed.size > 1;
}"""
XSS = ('Look: <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
       "[click me](javascript:window.__xss=3) ![pixel]({pixel})")


@pytest.fixture(scope="module")
def launched(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    home = tmp_path_factory.mktemp("browser-home")
    (home / "models").mkdir()
    (home / "models" / smollm2.name).symlink_to(smollm2)
    # Titles stay the first line of the first question, which these tests look for (the
    # model's titles are tested with AppTest).
    History(home / "data" / FILE_NAME).set_setting(titles.SETTING, False)
    stack = Launched(["--no-browser"], home)
    try:
        stack.expect(READY)
        yield stack
    finally:
        stack.cleanup()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as opened:
        yield opened


@pytest.fixture
def app(launched: Launched, browser: Browser) -> Iterator[ChatPage]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield ChatPage(context.new_page(), launched.session()["urls"]["app"]).open()
    finally:
        context.close()


def llm_log(launched: Launched) -> str:
    return (launched.home / "logs" / "llm.log").read_text(errors="replace")


def test_send_a_question_and_watch_the_answer_stream_in(app: ChatPage) -> None:
    screenshot(app.page, "01-start")
    app.send("Write two sentences about the sea.")
    # The text grows while the page watches: two different texts, each still followed by
    # the cursor (checked at every frame, so a fast model and a slow machine both pass).
    app.page.wait_for_function(STREAMED_TWICE, polling="raf", timeout=300_000)
    screenshot(app.page, "02-streaming")
    text = app.wait_for_answer()
    assert text.strip() and "▌" not in text
    stats = app.assistant().get_by_text(re.compile("tokens/s")).inner_text()
    assert "smollm2-135m" in stats and "first token" in stats
    screenshot(app.page, "03-answer")
    assert app.errors == []


def test_stop_ends_generation_upstream_and_keeps_the_partial_answer(
        app: ChatPage, launched: Launched) -> None:
    disconnects = llm_log(launched).count("Disconnected from client")
    app.send("Write a very long story about a dragon who learns to cook.")
    app.stop_button.wait_for(timeout=120_000)
    grows(app, 10)  # tokens are coming
    answer = app.assistant().get_by_test_id("stMarkdownContainer").first
    screenshot(app.page, "04-before-stop")
    app.page.keyboard.press("Escape")  # the Stop button's shortcut
    app.assistant().get_by_text("Stopped: the answer above is partial.").wait_for(
        timeout=120_000)
    app.wait_idle()
    screenshot(app.page, "05-stopped")
    partial = answer.inner_text()
    assert partial.strip()
    deadline = time.monotonic() + 60
    while llm_log(launched).count("Disconnected from client") == disconnects:
        assert time.monotonic() < deadline, "the LLM server never saw the stream close"
        time.sleep(0.1)
    # The server is free again: the next question is answered.
    app.send("Answer with one word: what colour is grass?")
    assert app.wait_for_answer().strip()
    assert app.errors == []


def test_switch_conversations_and_find_the_history_after_a_reload(app: ChatPage) -> None:
    # The page writes the new address early in its run, while the previous run's elements
    # are still shown: each check waits for the run to end (see ChatPage.wait_idle).
    app.send("Answer in one word: the capital of Italy?")
    first_answer = app.wait_for_answer()
    first_address = app.page.url
    app.page.keyboard.press("Control+Shift+O")  # new conversation
    app.page.wait_for_url(lambda url: url != first_address)
    app.wait_idle()
    expect(app.messages).to_have_count(0)
    app.send("Answer in one word: the capital of Spain?")
    app.wait_for_answer()
    app.sidebar_button("Answer in one word: the capital of Italy?").click()
    app.page.wait_for_url(first_address)
    app.wait_idle()
    expect(app.messages).to_have_count(2)
    question = app.messages.first.get_by_test_id("stMarkdownContainer").first
    expect(question).to_have_text("Answer in one word: the capital of Italy?",
                                  use_inner_text=True)
    screenshot(app.page, "06-switched")
    app.page.reload()
    app.wait_idle()
    expect(app.messages).to_have_count(2)
    expect(app.assistant().get_by_test_id("stMarkdownContainer").first).to_have_text(
        first_answer, use_inner_text=True)
    app.sidebar_button("Answer in one word: the capital of Spain?").wait_for()
    screenshot(app.page, "07-after-reload")
    assert app.errors == []


def streamed_text(app: ChatPage) -> Locator:
    return app.assistant().get_by_test_id("stMarkdownContainer").first


def grows(app: ChatPage, than: int) -> None:
    """Wait until the answer being shown is longer than ``than`` characters."""
    app.page.wait_for_function(
        """([count]) => {
            const answers = [...document.querySelectorAll('[data-testid="stChatMessage"]')]
                .filter(m => m.querySelector('[data-testid="stChatMessageAvatarAssistant"]'));
            const last = answers[answers.length - 1];
            if (!last) return false;
            // The answer's text, not the "Waiting for the first token" caption.
            const text = [...last.querySelectorAll('[data-testid="stMarkdownContainer"]')]
                .find(e => !e.closest('[data-testid="stCaptionContainer"]'));
            return !!text && text.innerText.length > count;
        }""", arg=[than], timeout=300_000)  # generous: the first token is slow under load


def test_an_answer_goes_on_in_another_conversation_and_after_a_reload(
        app: ChatPage, launched: Launched) -> None:
    disconnects = llm_log(launched).count("Disconnected from client")
    app.send("Write one sentence about a lighthouse keeper and a whale.")
    grows(app, 20)
    first_address = app.page.url
    app.page.keyboard.press("Control+Shift+O")  # another conversation, mid-answer
    app.page.wait_for_url(lambda url: url != first_address)
    expect(app.messages).to_have_count(0)
    screenshot(app.page, "16-other-conversation-while-answering")
    app.sidebar_button("Write one sentence about a lighthouse keeper and a whale."
                       ).click()
    app.page.wait_for_url(first_address)
    # Still being written (or finished meanwhile), never cut.
    expect(app.assistant().get_by_text(re.compile("Stopped"))).to_have_count(0)
    shown = len(streamed_text(app).inner_text())
    if app.stop_button.count():
        screenshot(app.page, "17-back-still-streaming")
        app.page.reload()
        # At least what was shown: the answer may have ended meanwhile with the whole text
        # already on screen (the page draws the last tokens before it stores them).
        grows(app, shown - 1)
        screenshot(app.page, "18-after-reload-still-streaming")
    app.wait_for_answer(timeout=240)
    assert "Stopped" not in app.assistant().inner_text()
    assert len(streamed_text(app).inner_text()) >= shown
    # Nobody closed the LLM's stream: the answer ran to its end.
    assert llm_log(launched).count("Disconnected from client") == disconnects
    assert app.errors == []


def test_two_tabs_see_the_same_answer(launched: Launched, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        first = ChatPage(context.new_page(), launched.session()["urls"]["app"]).open()
        first.send("Write one sentence about autumn leaves.")
        grows(first, 10)
        second = ChatPage(context.new_page(), first.page.url)
        second.page.goto(first.page.url)
        grows(second, 10)  # the second tab follows the same answer
        first.wait_for_answer(timeout=240)
        second.wait_for_answer(timeout=240)
        assert streamed_text(first).inner_text() == streamed_text(second).inner_text()
        expect(second.messages).to_have_count(2)
    finally:
        context.close()


def test_the_empty_page_welcomes_with_the_model_and_examples(app: ChatPage) -> None:
    main = app.page.get_by_test_id("stMainBlockContainer")
    expect(main.get_by_role("heading", name="What can I help with?")).to_be_visible()
    expect(main.get_by_role("heading", name="opea-chat")).to_have_count(0)
    expect(main.get_by_text(re.compile(r"smollm2-135m.*ready"))).to_be_visible()
    expect(app.input).to_be_focused()  # type at once
    expect(main.get_by_role("link")).to_have_count(0)  # no footer link to the megaservice
    expect(app.page.get_by_test_id("stSidebar").get_by_role(
        "button", name="New conversation", exact=True)).to_have_count(0)
    screenshot(app.page, "19-welcome")
    example = "Write a haiku about the sea."
    main.get_by_role("button", name=example).click()
    expect(main.get_by_role("heading", name=example)).to_be_visible(timeout=60_000)
    assert app.wait_for_answer().strip()
    # The open conversation is not drawn like Delete (a primary, red button).
    expect(app.sidebar_button(example)).to_have_attribute("data-testid",
                                                          "stBaseButton-secondary")


def test_quit_asks_first_and_keep_running_or_esc_keep_everything(
        app: ChatPage, launched: Launched) -> None:
    question = app.ask_to_quit()
    expect(question).to_contain_text("Your conversations are kept")
    screenshot(app.page, "21-quit-question")
    question.get_by_role("button", name="Keep running", exact=True).click()
    expect(question).to_have_count(0)
    app.ask_to_quit()
    app.page.keyboard.press("Escape")
    expect(question).to_have_count(0)
    # The answered "no" stays answered through the page's next runs, and nothing stopped.
    app.send("Name a colour.")
    assert app.wait_for_answer().strip()
    expect(question).to_have_count(0)
    assert launched.process.poll() is None


def test_shift_enter_adds_a_line_and_enter_sends(app: ChatPage) -> None:
    app.input.fill("First line")
    app.input.press("Shift+Enter")
    app.input.type("second line")
    assert app.input.input_value() == "First line\nsecond line"
    app.input.press("Enter")  # a fresh page: its first answer is the one to wait for
    app.wait_for_answer()
    question = app.messages.first.get_by_test_id("stMarkdownContainer").first.inner_text()
    assert question.splitlines() == ["First line", "second line"]


def test_export_all_downloads_a_backup_with_the_conversations(app: ChatPage) -> None:
    app.send("Answer in one word: the colour of the sky?")
    app.wait_for_answer()
    backup_section = app.open_section("Backup")
    with app.page.expect_download() as download:
        backup_section.get_by_role("button", name="Export all (JSON)").click()
    backup = json.loads(Path(download.value.path()).read_text())
    titles = [c["title"] for c in backup["conversations"]]
    assert backup["format"] == "opea-chat"
    assert "Answer in one word: the colour of the sky?" in titles


class Recorder:
    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, request: BaseHTTPRequestHandler) -> None:
        self.paths.append(request.path)
        request.send_response(404)
        request.send_header("Content-Length", "0")
        request.end_headers()


def assert_nothing_ran(app: ChatPage, recorder: Recorder) -> None:
    answer = app.assistant()
    answer.get_by_text("<script>window.__xss=2</script>", exact=False).wait_for()
    assert app.page.evaluate("window.__xss") is None
    assert app.page.locator("img[src=x]").count() == 0
    assert app.page.locator("script", has_text="__xss").count() == 0
    link = answer.get_by_role("link", name="click me")
    assert not (link.get_attribute("href") or "").lower().startswith("javascript:")
    link.click()
    assert app.page.evaluate("window.__xss") is None
    assert recorder.paths == []  # the image was not fetched: it is shown as a link
    assert app.errors == []


def test_a_dns_rebound_page_sees_nothing_and_stops_nothing(launched: Launched,
                                                          browser: Browser,
                                                          app: ChatPage) -> None:
    # There is a conversation to steal (stopped at once: its answer does not matter).
    app.send("Remember the word turnip.")
    app.stop_button.wait_for(timeout=120_000)
    app.page.keyboard.press("Escape")  # stops it, unless it has already ended
    app.wait_idle()
    assert app.page.get_by_text("Remember the word turnip.").count() > 0
    urls = launched.session()["urls"]
    port = urls["app"].rsplit(":", 1)[1].strip("/")
    evil = f"http://evil.example:{port}/"
    # A second Chromium, whose resolver maps evil.example to 127.0.0.1 (what DNS
    # rebinding achieves), from the same Playwright (a second one cannot run beside it).
    rebound = browser.browser_type.launch(executable_path=CHROMIUM, args=[
        *CHROMIUM_ARGS, "--host-resolver-rules=MAP evil.example 127.0.0.1"])
    try:
        page = rebound.new_page()
        response = page.goto(evil)
        assert response is not None and response.status == 403
        page.wait_for_timeout(2000)
        assert page.locator(".stApp").count() == 0
        assert "turnip" not in page.content().lower()
        # The attacker's script, same-origin with evil.example: the page's websocket
        # (what lists conversations and carries Quit) does not open.
        opened = page.evaluate("""port => new Promise(done => {
            const socket = new WebSocket(`ws://evil.example:${port}/_stcore/stream`);
            socket.onopen = () => done(true);
            socket.onerror = socket.onclose = () => done(false);
        })""", port)
        assert opened is False
        screenshot(page, "12-dns-rebinding")
    finally:
        rebound.close()
    assert launched.process.poll() is None  # nothing stopped
    assert app.open().input.is_visible()  # and the real page still works


def test_html_and_scripts_in_an_imported_answer_are_shown_as_text(
        app: ChatPage, tmp_path: Path) -> None:
    recorder = Recorder()
    with serve(recorder) as pixel_server:
        backup = {"format": "opea-chat", "version": 1, "conversations": [{
            "title": f"Hostile ![title]({pixel_server}/title.png) answer", "messages": [
                {"role": "user", "content": "Show me HTML."},
                {"role": "assistant",
                 "content": XSS.format(pixel=pixel_server + "/pixel.png")}]}]}
        upload = tmp_path / "hostile.json"
        upload.write_text(json.dumps(backup))
        app.open_section("Backup").locator("input[type=file]").set_input_files(str(upload))
        app.page.get_by_text("Imported 1 conversation.").wait_for(timeout=120_000)
        app.wait_idle()  # the notice is shown by the run that shows the conversation
        assert_nothing_ran(app, recorder)
        screenshot(app.page, "08-hostile-import")


def test_code_blocks_are_highlighted_and_copied_with_one_click(app: ChatPage,
                                                              tmp_path: Path) -> None:
    code = 'def greet(name):\n    return f"Hello, {name}!"'
    backup = {"format": "opea-chat", "version": 1, "conversations": [{
        "title": "Some code", "messages": [
            {"role": "user", "content": "A greeting function?"},
            {"role": "assistant", "content": f"Here:\n\n```python\n{code}\n```\n"}]}]}
    upload = tmp_path / "code.json"
    upload.write_text(json.dumps(backup))
    app.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    app.open_section("Backup").locator("input[type=file]").set_input_files(str(upload))
    block = app.assistant().get_by_test_id("stCode")
    block.wait_for(timeout=120_000)
    app.wait_idle()  # the block is shown by the run that shows the imported conversation
    assert block.locator("span.token.keyword").first.inner_text() == "def"  # highlighted
    block.hover()
    block.get_by_role("button", name="Copy to clipboard").click()
    assert app.page.evaluate("navigator.clipboard.readText()") == code
    screenshot(app.page, "12-code-block")


def hostile_model(pixel: str) -> object:
    def handle(request: BaseHTTPRequestHandler) -> None:
        request.rfile.read(int(request.headers.get("Content-Length") or 0))
        text = XSS.format(pixel=pixel)
        events = [f"data: {text[i:i + 7].encode()!r}\n\n" for i in range(0, len(text), 7)]
        body = ("".join(events) + "data: [DONE]\n\n").encode()
        request.send_response(200)
        request.send_header("Content-Type", "text/event-stream")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    return handle


def test_html_and_scripts_streamed_by_the_model_are_shown_as_text(
        browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    with serve(recorder) as pixel_server, \
            serve(hostile_model(pixel_server + "/pixel.png")) as model:  # type: ignore[arg-type]
        port = pick_free_port()
        monkeypatch.setenv("OPEA_CHAT_HOME", str(tmp_path / "home"))
        monkeypatch.setenv(MEGASERVICE_URL_VARIABLE, model)
        command = service_command(CHAT_APP, port, app_script=str(APP_SCRIPT))
        url = f"http://127.0.0.1:{port}"
        with running("app", command, url + "/_stcore/health", tmp_path):
            context = browser.new_context()
            try:
                app = ChatPage(context.new_page(), url).open()
                app.send("Say something hostile.")
                app.wait_for_answer()
                assert_nothing_ran(app, recorder)
                screenshot(app.page, "09-hostile-stream")
            finally:
                context.close()


@pytest.mark.parametrize(("scheme", "dark"), [("light", False), ("dark", True)])
def test_light_and_dark_themes(launched: Launched, browser: Browser, scheme: str,
                               dark: bool) -> None:
    context = browser.new_context(color_scheme=scheme,  # type: ignore[arg-type]
                                  viewport={"width": 1280, "height": 900})
    try:
        app = ChatPage(context.new_page(), launched.session()["urls"]["app"]).open()
        app.open_section("Model")
        background = app.page.evaluate(
            "getComputedStyle(document.querySelector('.stApp')).backgroundColor")
        red, green, blue = (int(v) for v in re.findall(r"\d+", background)[:3])
        assert (red + green + blue < 200) is dark, background
        screenshot(app.page, f"10-theme-{scheme}")
    finally:
        context.close()


def test_a_narrow_window_still_chats(launched: Launched, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True)
    try:
        app = ChatPage(context.new_page(), launched.session()["urls"]["app"]).open()
        assert app.input.is_visible()
        app.send("Answer in one word: the opposite of hot?")
        assert app.wait_for_answer().strip()
        box = app.input.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        screenshot(app.page, "11-narrow")
        assert app.errors == []
    finally:
        context.close()


@pytest.fixture
def app_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
              ) -> Callable[[str], AbstractContextManager[str]]:
    """The app on its own (no launcher) for the megaservice at a given address."""
    port = pick_free_port()
    monkeypatch.setenv("OPEA_CHAT_HOME", str(tmp_path / "home"))
    command = service_command(CHAT_APP, port, app_script=str(APP_SCRIPT))
    url = f"http://127.0.0.1:{port}"

    @contextmanager
    def start(megaservice_url: str) -> Iterator[str]:
        monkeypatch.setenv(MEGASERVICE_URL_VARIABLE, megaservice_url)
        with running("app", command, url + "/_stcore/health", tmp_path):
            yield url

    return start


class SilentLLM:
    """A stand-in LLM server that takes a request and never answers (a hung model); it
    notes each time the other side hangs up."""

    def __init__(self) -> None:
        self.asked = 0
        self.hung_up = 0

    def __call__(self, request: BaseHTTPRequestHandler) -> None:
        request.rfile.read(int(request.headers.get("Content-Length") or 0))
        self.asked += 1
        request.rfile.read(1)  # b"" once the caller closed the connection
        self.hung_up += 1


def test_a_hung_model_is_reported_and_stop_works_before_the_first_token(
        browser: Browser, app_alone: Callable[[str], AbstractContextManager[str]],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPEA_CHAT_ANSWER_TIMEOUT", "15")  # Esc must land first, loaded or not
    llm = SilentLLM()
    with serve(llm) as llm_url, megaservice(llm_url, tmp_path) as mega_url, \
            app_alone(mega_url) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            app = ChatPage(context.new_page(), url).open()
            app.send("Is anyone there?")
            waiting = app.page.get_by_text(re.compile(r"Waiting for the first token"))
            expect(waiting).to_be_visible(timeout=30_000)
            reported = app.assistant().get_by_text("the model is not responding")
            expect(reported).to_be_visible(timeout=60_000)
            assert "opea-chat logs llm" in app.assistant().inner_text()
            expect(app.stop_button).to_have_count(0)
            section = app.open_section("Model")
            expect(section.get_by_text("the model is not responding")).to_be_visible()
            screenshot(app.page, "13-model-not-responding")
            asked = llm.asked

            # Stop before the first token: the request is cancelled up to the LLM.
            app.send("And now?")
            expect(waiting).to_be_visible(timeout=30_000)
            app.page.keyboard.press("Escape")
            expect(app.assistant().get_by_text("Stopped before the model wrote anything.")
                   ).to_be_visible(timeout=30_000)
            expect(app.stop_button).to_have_count(0)
            screenshot(app.page, "14-stopped-before-first-token")
            deadline = time.monotonic() + 15
            while llm.hung_up < asked + 1:
                assert time.monotonic() < deadline, "the LLM request was left running"
                app.page.wait_for_timeout(100)
            assert app.errors == []
        finally:
            context.close()


def test_when_opea_chat_stops_under_the_page_it_says_so_and_comes_back(
        browser: Browser, app_alone: Callable[[str], AbstractContextManager[str]]) -> None:
    dead = f"http://127.0.0.1:{pick_free_port()}"
    context = browser.new_context()
    try:
        with app_alone(dead) as url:
            app = ChatPage(context.new_page(), url).open()
        # The app is gone (as after `opea-chat stop`): the page says what happened.
        stopped = app.page.get_by_role("heading", name="opea-chat has stopped")
        expect(stopped).to_be_visible(timeout=30_000)
        expect(app.page.get_by_text("opea-chat launch")).to_be_visible()
        expect(app.page.get_by_text(re.compile("Connection error|connected to the internet"))
               ).to_have_count(0)
        screenshot(app.page, "15-stopped-under-the-page")
        with app_alone(dead):  # started again: the page comes back by itself
            expect(app.input).to_be_visible(timeout=60_000)
        assert app.errors == []
    finally:
        context.close()


def test_a_message_over_the_limit_stays_in_the_box_with_the_limit(
        browser: Browser, app_alone: Callable[[str], AbstractContextManager[str]]) -> None:
    dead = f"http://127.0.0.1:{pick_free_port()}"
    with app_alone(dead) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            app = ChatPage(context.new_page(), url).open()
            text = "x" * 25_000
            app.input.fill(text)
            app.input.press("Enter")
            note = app.page.get_by_role("alert").filter(has_text="25,000 characters")
            expect(note).to_contain_text("the limit is 20,000")
            expect(app.input).to_have_value(text)  # kept, not cleared
            expect(app.messages).to_have_count(0)  # and not sent
            screenshot(app.page, "20-too-long")
            app.input.fill("x" * 100)  # short enough again: the note goes
            expect(note).to_have_count(0)
            assert app.errors == []
        finally:
            context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_problem_on_the_page(
        browser: Browser, app_alone: Callable[[str], AbstractContextManager[str]],
        tmp_path: Path, scheme: str) -> None:
    code = 'def greet(name):\n    return f"Hello, {name}!" + " and welcome" * 12  # long'
    backup = {"format": "opea-chat", "version": 1, "conversations": [{
        "title": "Some code", "messages": [
            {"role": "user", "content": "A greeting function?"},
            {"role": "assistant", "content": f"Here:\n\n```python\n{code}\n```\n\n1. one"}]}]}
    upload = tmp_path / "code.json"
    upload.write_text(json.dumps(backup))
    with app_alone(f"http://127.0.0.1:{pick_free_port()}") as url:
        context = browser.new_context(color_scheme=scheme,  # type: ignore[arg-type]
                                      viewport={"width": 1280, "height": 900})
        try:
            app = ChatPage(context.new_page(), url).open()
            expect(app.input).to_be_focused()  # no Tab presses to reach it
            assert accessibility_problems(app.page) == [], "the empty page"
            app.open_section("Backup").locator("input[type=file]").set_input_files(
                str(upload))
            expect(app.assistant().get_by_test_id("stCode")).to_be_visible(timeout=30_000)
            app.wait_idle()
            assert accessibility_problems(app.page) == [], "a conversation"
            app.open_section("Settings")
            app.page.get_by_text("System prompt and parameters").click()
            expect(app.page.get_by_label("System prompt", exact=True)).to_be_visible()
            assert accessibility_problems(app.page) == [], "the open settings"
            screenshot(app.page, f"21-accessible-{scheme}", full_page=True)
        finally:
            context.close()


def test_each_message_has_a_labelled_action_row(
        browser: Browser, app_alone: Callable[[str], AbstractContextManager[str]],
        tmp_path: Path) -> None:
    answer = "Sure:\n\n- **one** thing\n- `two` things"
    long_question = "Please read all of this. " * 60
    backup = {"format": "opea-chat", "version": 1, "conversations": [{
        "title": "Actions", "messages": [
            {"role": "user", "content": "Short question?"},
            {"role": "assistant", "content": answer},
            {"role": "user", "content": long_question},
            {"role": "assistant", "content": "Done reading."}]}]}
    upload = tmp_path / "actions.json"
    upload.write_text(json.dumps(backup))
    with app_alone(f"http://127.0.0.1:{pick_free_port()}") as url:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        try:
            app = ChatPage(context.new_page(), url).open()
            app.open_section("Backup").locator("input[type=file]").set_input_files(
                str(upload))
            expect(app.messages).to_have_count(4, timeout=30_000)
            app.wait_idle()
            first_question, first_answer = app.messages.nth(0), app.messages.nth(1)
            expect(first_question.get_by_role("button", name="Edit question")).to_be_visible()
            expect(first_answer.get_by_role("button", name="Copy answer")).to_be_visible()
            copy = first_answer.locator("button.opea-copy")
            copy.click()
            expect(copy).to_have_text("Copied")
            assert app.page.evaluate("navigator.clipboard.readText()") == answer
            expect(app.messages.nth(3).get_by_role("button", name="Regenerate")
                   ).to_be_visible()
            # A long question is collapsed to its start, the whole of it one click away.
            long_one = app.messages.nth(2)
            expect(long_one.get_by_text(re.compile(r"Show the whole question"))
                   ).to_be_visible()
            assert len(long_one.get_by_test_id("stMarkdownContainer").first.inner_text()) \
                < len(long_question)
            screenshot(app.page, "22-action-row")
            assert app.errors == []
        finally:
            context.close()


def test_defaults_hold_across_conversations_and_launches(
        browser: Browser, app_alone: Callable[[str], AbstractContextManager[str]]) -> None:
    dead = f"http://127.0.0.1:{pick_free_port()}"
    pirate = "Answer like a pirate."
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        with app_alone(dead) as url:
            app = ChatPage(context.new_page(), url).open()
            section = app.open_section("Settings")
            section.get_by_label("Default system prompt").fill(pirate)
            section.get_by_label("Default system prompt").press("Tab")  # committed
            app.page.get_by_text("System prompt and parameters").click()
            expect(app.page.get_by_label("System prompt", exact=True)).to_have_value(
                pirate, timeout=30_000)
            screenshot(app.page, "23-defaults-set")
        with app_alone(dead) as url:  # the next launch, the same history
            app = ChatPage(context.new_page(), url).open()
            app.page.get_by_text("System prompt and parameters").click()
            expect(app.page.get_by_label("System prompt", exact=True)).to_have_value(pirate)
            section = app.open_section("Settings")
            expect(section.get_by_label("Default system prompt")).to_have_value(pirate)
            screenshot(app.page, "24-defaults-after-relaunch")
    finally:
        context.close()


def test_regenerate_keeps_versions_and_edit_takes_enter_and_esc(app: ChatPage) -> None:
    app.send("Answer with one word: name a colour (quartz).")
    first = app.wait_for_answer()
    # Buttons are named by their labels alone, not by their icons' ligatures too.
    app.assistant().get_by_role("button", name="Regenerate", exact=True).click()
    versions = app.page.get_by_text("2/2", exact=True)
    expect(versions).to_be_visible(timeout=300_000)
    app.wait_idle()
    app.assistant().get_by_role("button", name="Previous version", exact=True).click()
    expect(app.page.get_by_text("1/2", exact=True)).to_be_visible(timeout=30_000)
    app.wait_idle()
    assert app.assistant().get_by_test_id("stMarkdownContainer").first.inner_text() == first
    expect(app.assistant().get_by_role("button", name="Previous version", exact=True)
           ).to_be_disabled()
    expect(app.assistant().get_by_role("button", name="Next version", exact=True)
           ).to_be_enabled()
    screenshot(app.page, "25-answer-versions")
    assert accessibility_problems(app.page) == []

    # Edit: the box has the focus; Esc cancels, Enter sends.
    edit_box = app.page.get_by_label("Edit your question")
    app.messages.first.get_by_role("button", name="Edit question", exact=True).click()
    expect(edit_box).to_be_focused(timeout=30_000)
    screenshot(app.page, "26-editing")
    assert accessibility_problems(app.page) == []
    edit_box.press("Escape")
    expect(edit_box).to_have_count(0, timeout=30_000)
    app.wait_idle()
    expect(app.page.get_by_text("1/2", exact=True)).to_be_visible()  # nothing changed
    app.messages.first.get_by_role("button", name="Edit question", exact=True).click()
    expect(edit_box).to_be_focused(timeout=30_000)
    edit_box.fill("Answer with one word: name a fruit (quartz).")
    edit_box.press("Enter")
    expect(app.messages.first).to_contain_text("name a fruit (quartz)", timeout=30_000)
    expect(app.stored_answers).to_have_count(1, timeout=300_000)
    app.wait_idle()
    expect(app.page.get_by_text(re.compile(r"^\d/\d$"))).to_have_count(0)  # a new answer

    # The sidebar's search runs as you type, with the words that match.
    search = app.page.get_by_label("Search conversations")
    search.press_sequentially("fruit (qu", delay=50)
    snippet = app.page.get_by_test_id("stSidebar").get_by_text(
        "Answer with one word: name a fruit (quartz).")
    expect(snippet).to_be_visible(timeout=30_000)
    expect(search).to_be_focused()
    screenshot(app.page, "27-search-as-you-type")

    # The conversation's settings panel closes when another conversation opens.
    search.fill("")
    search.press("Enter")
    app.wait_idle()
    panel = app.page.get_by_test_id("stMainBlockContainer").get_by_test_id(
        "stExpander").filter(has_text="System prompt and parameters")
    panel.locator("summary").click()
    expect(panel.locator("details[open]")).to_have_count(1, timeout=30_000)
    app.wait_idle()
    app.page.get_by_test_id("stSidebar").get_by_role(
        "button", name=re.compile(r"^New conversation")).click()
    expect(app.page.get_by_text("What can I help with?")).to_be_visible(timeout=30_000)
    app.wait_idle()
    expect(panel.locator("details[open]")).to_have_count(0)
    assert app.errors == []


def test_the_models_title_replaces_the_first_line_without_a_click(app: ChatPage,
                                                                 launched: Launched) -> None:
    history = History(launched.home / "data" / FILE_NAME)
    history.set_setting(titles.SETTING, True)  # off for the module's other tests
    try:
        question = "Answer in one word: the largest ocean?"
        app.send(question)
        app.wait_for_answer()
        # The page shows the title once the model has written it, with nobody clicking.
        expect(app.sidebar_button(question)).to_have_count(0, timeout=180_000)
        conversation = history.conversation(int(app.page.url.split("c=")[1].split("&")[0]))
        assert conversation is not None and conversation.title != question
        expect(app.sidebar_button(conversation.title)).to_be_visible()
        expect(app.page.get_by_role("heading", name=conversation.title)).to_be_visible()
        screenshot(app.page, "28-model-title")
        assert app.errors == []
    finally:
        history.set_setting(titles.SETTING, False)
