"""A real browser for the end-to-end tests: Debian's Chromium driven by Playwright.

Playwright's own browser download does not work on these machines, so the system Chromium
is used, headless and with everything that would reach the network switched off.
Screenshots go to ``test-artifacts/browser/`` (ignored by git) for a person to look at.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
# Installed by scripts/test.sh from the npm registry.
AXE = Path.home() / ".cache" / "opea-chat" / "axe-core" / "node_modules" / "axe-core" / \
    "axe.min.js"
SERIOUS = ("serious", "critical")
STATS = re.compile(r"tokens/s|cached")  # the statistics line of a stored answer


def accessibility_problems(page: Page) -> list[str]:
    """axe-core's violations of impact serious or critical on the page as it is now, one
    line each (rule, impact, how many elements, the first element)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document)")
    return [f"{v['id']} ({v['impact']}, {len(v['nodes'])}x): "
            f"{v['nodes'][0]['target']} {v['nodes'][0].get('failureSummary', '')[:200]}"
            for v in result["violations"] if v["impact"] in SERIOUS]


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


class ChatPage:
    """The chat app as a user sees it in the browser."""

    def __init__(self, page: Page, url: str):
        self.page = page
        self.url = url
        self.errors: list[str] = []
        self._answered = 0
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, query: str = "") -> ChatPage:
        self.page.goto(self.url + query)
        self.wait_idle()
        return self

    @property
    def input(self) -> Locator:
        return self.page.get_by_test_id("stChatInputTextArea")

    @property
    def messages(self) -> Locator:
        return self.page.get_by_test_id("stChatMessage")

    @property
    def answers(self) -> Locator:
        return self.messages.filter(has=self.page.get_by_test_id("stChatMessageAvatarAssistant"))

    @property
    def stored_answers(self) -> Locator:
        """Answers as shown once stored: only those carry the statistics line."""
        return self.answers.filter(has=self.page.get_by_text(STATS))

    def assistant(self, index: int = -1) -> Locator:
        return self.answers.nth(index) if index >= 0 else self.answers.last

    @property
    def stop_button(self) -> Locator:
        """The Stop button under the answer being written (not Streamlit's own)."""
        return self.page.get_by_test_id("stMainBlockContainer").get_by_role(
            "button", name=re.compile(r"^Stop"))

    def wait_idle(self, timeout: float = 120) -> None:
        """Until the page's script has finished its run.

        Only call it once something shows that the run to wait for has started (a new
        address, new text), or after loading the page: right after a click or a key the
        page still says "not running" until the server has begun the run. Streamlit marks
        the run's state on its root element; its status widget is no signal, as it only
        appears once a run has taken 0.5 s, and until a run ends the page still shows the
        previous run's elements."""
        try:
            expect(self.page.get_by_test_id("stApp")).to_have_attribute(
                "data-test-script-state", "notRunning", timeout=timeout * 1000)
            self.input.wait_for(timeout=timeout * 1000)
        except Exception:
            screenshot(self.page, f"failed-{time.strftime('%H%M%S')}")  # for the person
            raise

    def send(self, text: str) -> None:
        """Type and send a question; ``wait_for_answer`` then waits for its answer."""
        self._answered = self.stored_answers.count()
        self.input.fill(text)
        self.input.press("Enter")

    def wait_for_answer(self, timeout: float = 300) -> str:
        """The answer to the question just sent, once stored (one more answer with its
        statistics line than before sending: the previous answer has one too)."""
        try:
            expect(self.stored_answers).to_have_count(self._answered + 1,
                                                      timeout=timeout * 1000)
        except Exception:
            screenshot(self.page, f"failed-{time.strftime('%H%M%S')}")  # for the person
            raise
        self.wait_idle()
        return self.assistant().get_by_test_id("stMarkdownContainer").first.inner_text()

    def open_section(self, name: str) -> Locator:
        """Open a sidebar expander (a click can land while the page re-renders and be
        undone by it: click again until the section stays open)."""
        section = self.page.get_by_test_id("stSidebar").get_by_test_id("stExpander").filter(
            has=self.page.get_by_text(name, exact=True))
        opened = section.locator("details[open]")
        for _ in range(10):
            if opened.count():
                return section
            section.locator("summary").click()
            try:
                opened.wait_for(timeout=3000)
            except PlaywrightTimeoutError:
                continue
        raise AssertionError(f"the {name} section did not open")

    def sidebar_button(self, title: str) -> Locator:
        return self.page.get_by_test_id("stSidebar").get_by_role("button", name=title,
                                                                  exact=True)

    def ask_to_quit(self) -> Locator:
        """Press "Quit opea-chat" in the Model section; the question it opens (a click that
        lands while the page re-renders can be lost: click again, as a person would)."""
        self.open_section("Model")
        question = self.page.get_by_role("dialog").filter(has_text="Quit opea-chat?")
        for _ in range(5):
            if question.is_visible():  # a late one: the dialog now covers the button
                return question
            self.sidebar_button("Quit opea-chat").click()
            try:
                question.wait_for(timeout=10_000)
            except PlaywrightTimeoutError:
                continue
            return question
        raise AssertionError("Quit opea-chat did not ask to confirm")
