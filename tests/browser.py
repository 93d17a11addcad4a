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

from playwright.sync_api import Browser, Locator, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
# Installed by scripts/test.sh from the npm registry.
AXE = Path.home() / ".cache" / "opea-chat" / "axe-core" / "node_modules" / "axe-core" / \
    "axe.min.js"
SERIOUS = ("serious", "critical")


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

    def assistant(self, index: int = -1) -> Locator:
        answers = self.page.get_by_test_id("stChatMessage").filter(
            has=self.page.get_by_test_id("stChatMessageAvatarAssistant"))
        return answers.nth(index) if index >= 0 else answers.last

    @property
    def stop_button(self) -> Locator:
        """The Stop button under the answer being written (not Streamlit's own)."""
        return self.page.get_by_test_id("stMainBlockContainer").get_by_role(
            "button", name=re.compile(r"^Stop"))

    def wait_idle(self, timeout: float = 60) -> None:
        """Until the page has run its script and nothing is running."""
        try:
            self.input.wait_for(timeout=timeout * 1000)
        except Exception:
            screenshot(self.page, f"failed-{time.strftime('%H%M%S')}")  # for the person
            raise
        deadline = time.monotonic() + timeout
        while self.page.get_by_test_id("stStatusWidget").count():
            if time.monotonic() > deadline:
                raise AssertionError("the page kept running")
            time.sleep(0.1)
        time.sleep(0.3)  # let the last deltas paint

    def send(self, text: str) -> None:
        self.input.fill(text)
        self.input.press("Enter")

    def wait_for_answer(self, timeout: float = 120) -> str:
        """Send's answer, once stored (its statistics line is shown)."""
        self.assistant().get_by_text(re.compile(r"tokens/s|cached")).wait_for(
            timeout=timeout * 1000)
        self.wait_idle()
        return self.assistant().get_by_test_id("stMarkdownContainer").first.inner_text()

    def open_section(self, name: str) -> Locator:
        """Open a sidebar expander (a click can land while the page re-renders: retry)."""
        section = self.page.get_by_test_id("stSidebar").get_by_test_id("stExpander").filter(
            has=self.page.get_by_text(name, exact=True))
        details = section.locator("details")
        for _ in range(10):
            if details.get_attribute("open") is not None:
                return section
            section.locator("summary").click()
            time.sleep(0.5)
        raise AssertionError(f"the {name} section did not open")

    def sidebar_button(self, title: str) -> Locator:
        return self.page.get_by_test_id("stSidebar").get_by_role("button", name=title,
                                                                  exact=True)
