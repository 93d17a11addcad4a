"""Launching without a terminal, as a desktop shortcut does.

``opea-chat launch --background`` starts the launcher again as a detached process (its own
session, output to ``launcher.log`` in the log folder), so it keeps running after whatever
started it goes away, and returns once the stack is ready (or has failed). The detached
launcher reports a start-up failure where a desktop user will see it: a notification where
one can be shown, and an error page opened in the browser.
"""

from __future__ import annotations

import contextlib
import html
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from launcher.browser import open_in_browser
from launcher.paths import Paths

DETACHED_VARIABLE = "OPEA_CHAT_DETACHED"


def is_detached() -> bool:
    return os.environ.get(DETACHED_VARIABLE) == "1"


def launch_in_background(argv: list[str], paths: Paths, timeout: float) -> int:
    """Run ``opea-chat <argv>`` detached; relay its output until Ready or its exit."""
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    log = paths.log_dir / "launcher.log"
    with log.open("ab") as handle:
        offset = handle.tell()
        child = subprocess.Popen(
            [sys.executable, "-m", "launcher", *argv],
            stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, DETACHED_VARIABLE: "1"},
        )
    print(f"Starting in the background (launcher PID {child.pid}, log: {log})", flush=True)
    deadline = time.monotonic() + timeout
    try:
        with log.open("r", encoding="utf-8", errors="replace") as reader:
            reader.seek(offset)
            while True:
                line = reader.readline()
                if line:
                    print(line.rstrip("\n"), flush=True)
                    if line.startswith("Ready: "):
                        return 0
                    continue
                code = child.poll()
                if code is not None:
                    print(reader.read(), end="", flush=True)
                    return code
                if time.monotonic() > deadline:
                    print(f"Still starting after {timeout:g} s; it goes on in the background "
                          f"(`opea-chat status`, `opea-chat logs launcher`).", flush=True)
                    return 0
                time.sleep(0.1)
    except KeyboardInterrupt:
        # The launcher is ours and not attached to this terminal: pass the stop on.
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        child.wait(60)
        return 130


def error_page(message: str, details: str | None, log_dir: Path) -> str:
    body = f"<pre>{html.escape(details)}</pre>" if details else ""
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>opea-chat could not start"
        "</title><body style='font-family:sans-serif;max-width:50em;margin:3em auto'>"
        f"<h1>opea-chat could not start</h1><p>{html.escape(message)}</p>{body}"
        f"<p>The logs are in <code>{html.escape(str(log_dir))}</code>; "
        "<code>opea-chat doctor</code> checks this machine.</p></body></html>"
    )


def error_page_file(paths: Paths) -> Path:
    return paths.state_dir / "error.html"


def forget_failure(paths: Paths) -> None:
    """A launch that got to Ready: an earlier failure's page would only mislead."""
    error_page_file(paths).unlink(missing_ok=True)


def report_failure(paths: Paths, message: str, details: str | None) -> None:
    """Tell a user who has no terminal: a notification, and a page in the browser."""
    if shutil.which("notify-send"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["notify-send", "--app-name=opea-chat", "opea-chat could not start",
                            message], capture_output=True, timeout=5, check=False)
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    page = error_page_file(paths)
    page.write_text(error_page(message, details, paths.log_dir), encoding="utf-8")
    open_in_browser(page.as_uri(), wait=5.0)
