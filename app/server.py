"""The app's web server entry: Streamlit's ASGI app running the page behind the Host guard.

Streamlit answers any ``Host`` on its page and accepts a websocket whose ``Origin`` matches
a foreign ``Host``: a web page whose name was re-pointed at 127.0.0.1 (DNS rebinding)
could read every conversation and press Quit. ``streamlit run`` on this file finds the
``app`` below and serves it (with the same ``--server.*`` flags), so every request, the
page and its websocket alike, passes ``opea.host_guard.HostGuard`` first.
"""

from __future__ import annotations

from pathlib import Path

from starlette.middleware import Middleware
from streamlit.starlette import App

from opea.host_guard import HostGuard

# The page script itself (what Streamlit runs per session; AppTest runs it directly).
PAGE_SCRIPT = Path(__file__).with_name("main.py")
app = App(PAGE_SCRIPT, middleware=[Middleware(HostGuard)])
