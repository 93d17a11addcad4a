"""What the page changes in Streamlit's own frame around it.

- The input has the focus when the page loads, and titles are sized as titles.
- Editing a question: the box has the focus, Enter sends (Shift+Enter: a new line), Esc
  cancels. Streamlit's text area sends only with Ctrl+Enter, so Enter presses the form's
  Send button, whose form already holds the text.
- The sidebar's search runs as you type (Streamlit's text input reports its value on Enter
  or when it loses the focus): a pause in typing reports it.
- Icon buttons are named by their label alone ("Edit question", not "edit Edit question"):
  the icon's ligature text is hidden from assistive technology.
- Text reaches WCAG AA contrast in light and dark (axe-core checks it in the tests).
- A message over the length limit is kept in the box with the limit, not sent and lost.
- One Stop: Streamlit's status widget ("Running... Stop") appears during every answer, and
  its Stop only ends the tab's script run, leaving the page's Stop and the cursor behind.
  The page's own Stop (and Esc) is the one that ends an answer, so the widget is hidden.
- A page that outlives the service: when opea-chat stops (Quit, `opea-chat stop`, a service
  that ended) Streamlit's frame says "Connection error ... Are you connected to the
  internet?". A small script that checks the app's health replaces that with what
  happened and what to do, and reloads the page once opea-chat is back.

Both are fixed text written here, never model output or anything a user typed.
"""

from __future__ import annotations

import html
import json

from app.chat import MAX_INPUT_CHARS

HEALTH_PATH = "/_stcore/health"
EDIT_LABEL = "Edit your question"
SEARCH_LABEL = "Search conversations"
SEARCH_PAUSE_MS = 300
CHECK_EVERY_MS = 1000
FAILURES_BEFORE_STOPPED = 2  # one missed check can be a busy machine

STYLE = """
<style>
/* Copy: a plain button drawn like Streamlit's tertiary ones. */
button.opea-copy {
  background: none; border: none; padding: 0.25rem 0; cursor: pointer;
  font: inherit; color: inherit; display: inline-flex; gap: 0.3rem; align-items: center;
}
button.opea-copy:hover, button.opea-copy:focus-visible { text-decoration: underline; }
/* The question being edited is the page's only form, and Enter sends it (not Ctrl+Enter,
   as Streamlit's hint under the box would say). */
[data-testid="stForm"] [data-testid="InputInstructions"] { display: none; }
/* One Stop: the page's own (see app/frame.py). */
[data-testid="stStatusWidget"] { display: none !important; }
/* The conversation's title heads the page, at the size of a title, not a poster. */
[data-testid="stMainBlockContainer"] h1, [data-testid="stMainBlockContainer"] h1 * {
  font-size: 1.75rem !important; line-height: 1.3 !important;
}
/* Contrast of at least 4.5:1 (WCAG AA) where Streamlit's defaults fall short: captions,
   shortcut hints, code colours, slider values. The theme follows the system's scheme. */
@media (prefers-color-scheme: light) {
  [data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] *, kbd {
    color: #595857 !important; opacity: 1 !important;
  }
  [data-testid="stCode"] .token.keyword, [data-testid="stCode"] .token.function,
  [data-testid="stCode"] .token.builtin { color: #0b5cad !important; }
  [data-testid="stCode"] .token.string, [data-testid="stCode"] .token.char,
  [data-testid="stCode"] .token.attr-value { color: #0a6a2a !important; }
  [data-testid="stCode"] .token.number, [data-testid="stCode"] .token.boolean,
  [data-testid="stCode"] .token.constant { color: #0b6659 !important; }
  [data-testid="stCode"] .token.comment, [data-testid="stCode"] .token.prolog {
    color: #5b5e6b !important;
  }
}
@media (prefers-color-scheme: dark) {
  [data-testid="stCode"] .token.keyword, [data-testid="stCode"] .token.function,
  [data-testid="stCode"] .token.builtin { color: #7dbcff !important; }
  [data-testid="stSliderThumbValue"] p { color: #ff9aa4 !important; }
  [data-testid="stCode"] .token.comment, [data-testid="stCode"] .token.prolog {
    color: #a9adbb !important;
  }
}
</style>
"""

STOPPED_TITLE = "opea-chat has stopped"
# Paragraphs as (text, is_code) runs: the script builds them as DOM nodes, since the page's
# HTML sanitizer drops a script whose text contains markup.
STOPPED_PARAGRAPHS = [
    [("The chat service is no longer running: it was quit, stopped with ", False),
     ("opea-chat stop", True), (", or one of its services ended. Your conversations are "
                                "kept.", False)],
    [("Start it again with ", False), ("opea-chat launch", True),
     (" (or the desktop shortcut); this page reloads by itself once it is back. ", False),
     ("opea-chat logs", True), (" shows why a service ended.", False)],
]

WATCH_SCRIPT = """
<script>
(() => {
  if (window.__opeaChatWatch) return;
  window.__opeaChatWatch = true;
  let failures = 0;
  let stopped = false;
  const alive = async () => {
    try {
      const answer = await fetch("HEALTH_PATH", {cache: "no-store"});
      return answer.ok;
    } catch (error) {
      return false;
    }
  };
  const showStopped = () => {
    stopped = true;
    const page = document.createElement("main");
    page.id = "opea-chat-stopped";
    page.style.cssText = "font-family: sans-serif; max-width: 40em; margin: 4em auto; " +
      "padding: 0 1em; line-height: 1.5; color: #1f1f1f; background: #ffffff";
    const title = document.createElement("h1");
    title.textContent = TITLE;
    page.append(title);
    for (const runs of PARAGRAPHS) {
      const paragraph = document.createElement("p");
      for (const [text, isCode] of runs) {
        const run = document.createElement(isCode ? "code" : "span");
        run.textContent = text;
        paragraph.append(run);
      }
      page.append(paragraph);
    }
    document.title = TITLE;
    document.body.style.background = "#ffffff";
    document.body.replaceChildren(page);
  };
  const check = async () => {
    const ok = await alive();
    if (stopped) {
      if (ok) window.location.reload();
      return;
    }
    failures = ok ? 0 : failures + 1;
    if (failures >= FAILURES) showStopped();
  };
  setInterval(check, CHECK_EVERY_MS);
  // The input is focused on load: type at once, no Tab presses.
  const focusInput = (tries) => {
    const box = document.querySelector('[data-testid="stChatInputTextArea"]');
    if (box) box.focus();
    else if (tries > 0) setTimeout(() => focusInput(tries - 1), 100);
  };
  focusInput(100);
  // A message over the limit is not sent, so it stays in the box (a send would clear it),
  // and the page says why (app.chat.input_problem says the same after a send).
  const limit = MAX_CHARS;
  const tooLong = (box) => {
    const over = box.value.length > limit;
    let note = document.getElementById("opea-chat-too-long");
    if (over) {
      if (!note) {
        note = document.createElement("p");
        note.id = "opea-chat-too-long";
        note.setAttribute("role", "alert");
        note.style.cssText = "margin: 0.25em 0; color: #a3000b; background: #fff0f0; " +
          "padding: 0.25em 0.5em; border-radius: 0.25em";
        box.closest('[data-testid="stChatInput"]').before(note);
      }
      note.textContent = "That message is " + box.value.length.toLocaleString("en") +
        " characters; the limit is " + limit.toLocaleString("en") +
        ". Shorten it and send it again.";
    } else if (note) {
      note.remove();
    }
    return over;
  };
  const chatBox = () => document.querySelector('[data-testid="stChatInputTextArea"]');
  document.addEventListener("keydown", (event) => {
    const box = chatBox();
    if (event.target === box && event.key === "Enter" && !event.shiftKey && tooLong(box)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);
  // Copy: the answer's own text (Markdown) rides on the button (see copy_button).
  document.addEventListener("click", async (event) => {
    const button = event.target.closest && event.target.closest("button.opea-copy");
    if (!button) return;
    try {
      await navigator.clipboard.writeText(button.dataset.copy);
      button.textContent = "Copied";
    } catch (error) {
      button.textContent = "Copy failed: " + error;
    }
    setTimeout(() => { button.textContent = "Copy answer"; }, 2000);
  });
  document.addEventListener("input", (event) => {
    const box = chatBox();
    if (event.target === box && document.getElementById("opea-chat-too-long")) tooLong(box);
  }, true);
  // Editing a question: Enter sends, Shift+Enter is a new line, Esc cancels.
  const formButton = (box, label) => {
    const form = box.closest('[data-testid="stForm"]');
    return form && [...form.querySelectorAll("button")].find(
      (button) => button.innerText.trim() === label);
  };
  document.addEventListener("keydown", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLTextAreaElement) ||
        box.getAttribute("aria-label") !== EDIT_LABEL || event.isComposing) return;
    const plainEnter = event.key === "Enter" && !event.shiftKey && !event.ctrlKey &&
      !event.metaKey && !event.altKey;
    const label = plainEnter ? "Send" : event.key === "Escape" ? "Cancel" : null;
    const button = label && formButton(box, label);
    if (!button) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    button.click();
  }, true);
  // Search as you type: after a pause, Enter reports the text typed so far.
  let searchTimer = null;
  document.addEventListener("input", (event) => {
    const box = event.target;
    if (!(box instanceof HTMLInputElement) ||
        box.getAttribute("aria-label") !== SEARCH_LABEL) return;
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      box.dispatchEvent(new KeyboardEvent("keydown", {
        key: "Enter", code: "Enter", keyCode: 13, which: 13, bubbles: true,
        cancelable: true}));
    }, SEARCH_PAUSE_MS);
  }, true);
  // On every change of the page: focus a question box just opened for editing; hide
  // icon ligatures from the accessibility tree.
  const tidy = () => {
    const box = document.querySelector('textarea[aria-label="' + EDIT_LABEL + '"]');
    if (box && !box.dataset.opeaFocused) {
      box.dataset.opeaFocused = "1";
      box.focus();
      box.setSelectionRange(box.value.length, box.value.length);
    }
    for (const icon of document.querySelectorAll(
        'button [data-testid="stIconMaterial"]:not([aria-hidden])')) {
      icon.setAttribute("aria-hidden", "true");
    }
  };
  // At most once a frame: a streaming answer changes the page many times a second.
  let tidyPending = false;
  new MutationObserver(() => {
    if (tidyPending) return;
    tidyPending = true;
    requestAnimationFrame(() => { tidyPending = false; tidy(); });
  }).observe(document.body, {childList: true, subtree: true});
  tidy();
  document.addEventListener("click", (event) => {
    const box = chatBox();
    if (box && event.target.closest('[data-testid="stChatInputSubmitButton"]') &&
        tooLong(box)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);
})();
</script>
""".replace("HEALTH_PATH", HEALTH_PATH).replace("TITLE", json.dumps(STOPPED_TITLE)) \
    .replace("PARAGRAPHS", json.dumps(STOPPED_PARAGRAPHS)) \
    .replace("FAILURES", str(FAILURES_BEFORE_STOPPED)) \
    .replace("CHECK_EVERY_MS", str(CHECK_EVERY_MS)) \
    .replace("MAX_CHARS", str(MAX_INPUT_CHARS)).replace("EDIT_LABEL", json.dumps(EDIT_LABEL)) \
    .replace("SEARCH_LABEL", json.dumps(SEARCH_LABEL)) \
    .replace("SEARCH_PAUSE_MS", str(SEARCH_PAUSE_MS))


def copy_button(answer: str) -> str:
    """A button that copies ``answer`` (the page's script does the copying). The text is an
    escaped attribute value, never markup; the page's sanitizer checks it again."""
    return (f'<button type="button" class="opea-copy" data-copy="{html.escape(answer)}">'
            "Copy answer</button>")
