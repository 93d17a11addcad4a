"""What the page changes in Streamlit's own frame around it.

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

import json

HEALTH_PATH = "/_stcore/health"
CHECK_EVERY_MS = 1000
FAILURES_BEFORE_STOPPED = 2  # one missed check can be a busy machine

STYLE = """
<style>
/* One Stop: the page's own (see app/frame.py). */
[data-testid="stStatusWidget"] { display: none !important; }
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
})();
</script>
""".replace("HEALTH_PATH", HEALTH_PATH).replace("TITLE", json.dumps(STOPPED_TITLE)) \
    .replace("PARAGRAPHS", json.dumps(STOPPED_PARAGRAPHS)) \
    .replace("FAILURES", str(FAILURES_BEFORE_STOPPED)) \
    .replace("CHECK_EVERY_MS", str(CHECK_EVERY_MS))
