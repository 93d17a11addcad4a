"""A scripted HTTP server on 127.0.0.1 for failure cases a healthy megaservice never shows
(a stalled server, a stream cut mid-answer). Real sockets and real HTTP; only the answers
are scripted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from launcher.ports import pick_free_port

Handler = Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def serve(handler: Handler, delay: float = 0.0) -> Iterator[str]:
    """Serve ``handler`` for every request and yield the base URL. With ``delay`` the port
    starts listening only after that many seconds (to exercise connect retries)."""

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            handler(self)

        do_POST = do_HEAD = do_GET

        def log_message(self, format: str, *args: object) -> None:
            pass

    port = pick_free_port()
    servers: list[ThreadingHTTPServer] = []

    def run() -> None:
        time.sleep(delay)
        server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        server.daemon_threads = True
        servers.append(server)
        server.serve_forever(poll_interval=0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not delay:
        while not servers:
            time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if not servers:  # a delayed server still starting: let it come up, then stop it
            thread.join(timeout=delay + 1)
        for server in servers:
            server.shutdown()
            server.server_close()


def reply(status: int, body: bytes, content_type: str = "text/plain") -> Handler:
    def handle(request: BaseHTTPRequestHandler) -> None:
        request.rfile.read(int(request.headers.get("Content-Length") or 0))
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    return handle
