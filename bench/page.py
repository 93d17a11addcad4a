"""The chat page in Chromium against curl, on the same prompts: what the page adds before
the first token, and the rate at which tokens reach the screen.

Each prompt is asked both ways, alternating which goes first, so drift on a shared machine
hits both alike. curl reads the megaservice's stream as any client would; the browser
types the prompt into a new conversation and watches the page at every frame: the first
token is when answer text first appears, the last when the complete answer first is on
screen. When the stored answer's statistics line appears (the page's next run) is reported
beside it.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import time
from dataclasses import dataclass

from playwright.sync_api import expect

from bench.streaming import _prompt
from opea.client import ChatParams
from opea.stack import CHATQNA_PATH
from tests.browser import ChatPage, chromium

# The page's own defaults for a new conversation, so both ways ask for the same thing.
PARAMS = ChatParams()
# Watches the newest answer at every frame and notes when its text changes, with the
# page's clock, so the bench can tell afterwards when the complete answer was first on screen.
WATCH = """() => {
    window.__shown = [];
    window.__started = performance.now();
    const newest = () => {
        const answers = [...document.querySelectorAll('[data-testid="stChatMessage"]')]
            .filter(m => m.querySelector('[data-testid="stChatMessageAvatarAssistant"]'));
        const last = answers[answers.length - 1];
        if (!last) return "";
        const text = [...last.querySelectorAll('[data-testid="stMarkdownContainer"]')]
            .find(e => !e.closest('[data-testid="stCaptionContainer"]'));
        return text ? text.innerText.replace("\u258c", "").trim() : "";
    };
    const before = newest();
    let seen = before;
    const look = () => {
        const text = newest();
        if (text !== seen && text !== before) {
            window.__shown.push([performance.now() - window.__started, text]);
        }
        seen = text;
        if (!window.__stopWatching) requestAnimationFrame(look);
    };
    window.__stopWatching = false;
    requestAnimationFrame(look);
}"""
TITLES_TOGGLE = "Name conversations with a short title from the model"
ANSWER_SHOWN = "() => window.__shown.some(([, text]) => text.length > 0)"



@dataclass
class Timing:
    first_token: float
    last_token: float  # the whole answer on screen (for curl: its last token read)
    tokens: int
    finished: float = 0.0  # the page only: the stored answer with its statistics shown
    streamed_rate: float = 0.0  # the page only: tokens/s as the app's client received them

    @property
    def tokens_per_second(self) -> float:
        generating = self.last_token - self.first_token
        return (self.tokens - 1) / generating if generating > 0 and self.tokens > 1 else 0.0


def with_curl(megaservice: str, prompt: str) -> Timing:
    body = json.dumps({"messages": [{"role": "user", "content": prompt}], "stream": True,
                       "max_tokens": PARAMS.max_tokens, "temperature": PARAMS.temperature,
                       "top_p": PARAMS.top_p})
    started = time.monotonic()
    first = last = None
    tokens = 0
    with subprocess.Popen(["curl", "-sN", "-H", "Content-Type: application/json", "-d", body,
                           megaservice + CHATQNA_PATH], stdout=subprocess.PIPE,
                          text=True) as curl:
        assert curl.stdout is not None
        for line in curl.stdout:
            if not line.startswith("data: b"):
                continue
            last = time.monotonic() - started
            first = last if first is None else first
            tokens += 1
    if first is None or last is None:
        raise RuntimeError(f"curl got no tokens for {prompt!r}")
    return Timing(first, last, tokens)


def with_browser(app: ChatPage, prompt: str) -> Timing:
    app.page.goto(app.url)  # a new conversation (the welcome page)
    app.input.wait_for(timeout=300_000)  # a loaded machine can be slow to draw the page
    app.input.fill(prompt)
    app.page.evaluate(WATCH)
    app.input.press("Enter")
    app.page.wait_for_function(ANSWER_SHOWN, timeout=300_000, polling="raf")
    stats = app.assistant().get_by_text(re.compile(r"tokens/s"))
    stats.wait_for(timeout=600_000)
    finished = app.page.evaluate("performance.now() - window.__started") / 1000
    app.page.evaluate("window.__stopWatching = true")
    shown: list[tuple[float, str]] = app.page.evaluate("window.__shown")
    final = shown[-1][1]
    first = next(at for at, text in shown if text) / 1000
    last = next(at for at, text in shown if text == final) / 1000
    line = stats.inner_text()
    count = re.search(r"(\d+) tokens", line)
    rate = re.search(r"([\d.]+) tokens/s", line)
    return Timing(first, last, int(count.group(1)) if count else 0, finished,
                  float(rate.group(1)) if rate else 0.0)


def no_titles(app: ChatPage) -> None:
    """Turn off the titles the model writes after a conversation's first answer: each page
    run would otherwise leave the model writing one while the next curl run is timed (a
    curl first token of 3.6 s after a page answer, 0.14 s otherwise)."""
    toggle = app.open_section("Settings").locator("label", has_text=TITLES_TOGGLE).locator(
        "input")
    if toggle.is_checked():
        toggle.click(force=True)  # Streamlit's toggle hides its input under its own drawing
        expect(toggle).not_to_be_checked(timeout=60_000)
    app.wait_idle()


def compare(app_url: str, megaservice: str, runs: int) -> dict[str, float]:
    curl_runs: list[Timing] = []
    page_runs: list[Timing] = []
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            app = ChatPage(context.new_page(), app_url)
            app.page.goto(app_url)
            app.input.wait_for(timeout=300_000)
            no_titles(app)
            for number in range(runs):
                prompt = _prompt(1000 + number)
                ways = [lambda p=prompt: curl_runs.append(with_curl(megaservice, p)),
                        lambda p=prompt: page_runs.append(with_browser(app, p))]
                for way in ways if number % 2 == 0 else reversed(ways):
                    way()
        finally:
            context.close()

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    result = {
        "runs": runs,
        "curl_first_token_s": median([t.first_token for t in curl_runs]),
        "page_first_token_s": median([t.first_token for t in page_runs]),
        "curl_tokens_per_s": median([t.tokens_per_second for t in curl_runs]),
        "page_tokens_per_s": median([t.tokens_per_second for t in page_runs]),
        "curl_answer_s": median([t.last_token for t in curl_runs]),
        "page_answer_on_screen_s": median([t.last_token for t in page_runs]),
        "page_answer_stored_s": median([t.finished for t in page_runs]),
        # What the model gave the page's own client while Chromium drew it: on a machine
        # with few cores the browser's drawing slows the model itself.
        "page_streamed_tokens_per_s": median([t.streamed_rate for t in page_runs]),
    }
    result["page_added_first_token_ms"] = round(
        1000 * (result["page_first_token_s"] - result["curl_first_token_s"]))
    result["page_rate_vs_curl"] = round(
        result["page_tokens_per_s"] / result["curl_tokens_per_s"], 2) \
        if result["curl_tokens_per_s"] else 0.0
    return result
