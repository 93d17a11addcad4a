"""An ASGI guard that refuses requests addressed to a host other than this machine.

A service on 127.0.0.1 is reachable from any web page the user opens once that page's host
name is re-pointed at 127.0.0.1 (DNS rebinding). Such a request still carries the page's
own name in ``Host`` (and its origin in ``Origin``), so every listener accepts only the
loopback names. Any listener built on Starlette/FastAPI can wrap its app in it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def host_name(host_header: str) -> str:
    """The name part of a ``Host`` header value (no port, no IPv6 brackets), lower-cased."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def origin_allowed(origin: str, allowed: frozenset[str] = LOOPBACK_NAMES) -> bool:
    if origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and (parts.hostname or "") in allowed


class HostGuard:
    """Answers 403 to a request (HTTP or WebSocket) whose ``Host`` or ``Origin`` names a
    host outside ``allowed``; a request without ``Origin`` (curl, other services) passes."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str] = LOOPBACK_NAMES) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1")
                   for key, value in scope.get("headers", [])}
        host_ok = host_name(headers.get("host", "")) in self.allowed
        origin = headers.get("origin")
        if host_ok and (origin is None or origin_allowed(origin, self.allowed)):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = b'{"detail":"refused: this service answers only requests addressed to 127.0.0.1"}'
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
