"""Opening the app in the user's browser, without ever blocking the launcher."""

from __future__ import annotations

import os
import sys
import threading
import webbrowser


def can_open_browser() -> bool:
    """On Linux without a display, ``webbrowser`` may fall back to a text browser that
    takes over the terminal; only try when there is a display or an explicit $BROWSER."""
    if os.environ.get("BROWSER"):
        return True
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def open_in_browser(url: str, wait: float = 0.0) -> bool:
    """Open ``url`` without blocking; ``wait`` seconds at most for the browser command to
    be started (for a process about to exit, whose daemon threads would die with it)."""
    if not can_open_browser():
        return False
    # Some browser commands wait for the browser to exit: keep them off the main thread.
    opener = threading.Thread(target=webbrowser.open, args=(url,), daemon=True)
    opener.start()
    if wait:
        opener.join(wait)
    return True
