"""The control channel: a small HTTP server the running launcher owns.

It listens on 127.0.0.1 on a random port and answers only requests that carry a random
token; port and token live in the session file, which only the user can read. The CLI
(`status`, `stop`) and the app (Quit, model switch) use it through ``ControlClient``.

Requests that change the stack (switch the model) are carried out by the launcher's main
loop, never on the server's thread: the server queues them and waits for the answer.
"""

from __future__ import annotations

import hmac
import json
import math
import queue
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx

from launcher.errors import ControlError, RecordError
from launcher.ports import HOST
from launcher.records import ModelSwitch, SessionRecord, StatusReport, Stopping
from opea.errors import OpeaChatError
from opea.host_guard import LOOPBACK_NAMES, host_name, origin_allowed

STATUS_PATH = "/v1/status"
SHUTDOWN_PATH = "/v1/shutdown"
MODEL_PATH = "/v1/model"
MAX_SHUTDOWN_DELAY = 5.0
T = TypeVar("T")
MAX_BODY = 64 * 1024


def shutdown_delay(value: object) -> float | None:
    """The delay a shutdown request asked for, kept within 0..MAX_SHUTDOWN_DELAY (a short
    delay lets a page that asked finish showing it has stopped); None when not a number."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        delay = float(value)
    except ValueError:
        return None
    if not math.isfinite(delay):
        return None
    return min(max(delay, 0.0), MAX_SHUTDOWN_DELAY)


@dataclass
class ControlRequest:
    """Work for the launcher's main loop; ``reply`` gets its result or its error."""

    action: str
    argument: str
    reply: Future[ModelSwitch] = field(default_factory=Future)


class ControlServer:
    def __init__(self, status: Callable[[], StatusReport],
                 shutdown: Callable[[str], None], request_timeout: float):
        self.token = secrets.token_urlsafe(32)
        self.requests: queue.Queue[ControlRequest] = queue.Queue()
        self._status = status
        self._shutdown = shutdown
        self._request_timeout = request_timeout
        self._server = ThreadingHTTPServer((HOST, 0), self._handler_class())
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        # close() waits for the serving loop to see the shutdown: at most one poll interval.
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        control = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # requests carry the token in a header; keep them out of logs

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                # A DNS-rebound page cannot know the token, but it must not even reach it.
                origin = self.headers.get("Origin")
                if (host_name(self.headers.get("Host", "")) not in LOOPBACK_NAMES
                        or (origin is not None and not origin_allowed(origin))):
                    self._reply(403, {"error": "this channel answers only 127.0.0.1"})
                    return False
                given = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if hmac.compare_digest(given.encode(), control.token.encode()):
                    return True
                self._reply(401, {"error": "missing or wrong token"})
                return False

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                if self.path == STATUS_PATH:
                    self._reply(200, control._status().to_json())
                else:
                    self._reply(404, {"error": f"no {self.path} here"})

            def do_POST(self) -> None:
                if not self._authorised():
                    return
                body = self._json_body()
                if body is None:
                    return
                if self.path == SHUTDOWN_PATH:
                    reason = str(body.get("reason") or "a stop request")
                    delay = shutdown_delay(body.get("after_s"))
                    if delay is None:
                        self._reply(400, {"error": "after_s must be a number of seconds"})
                        return
                    threading.Timer(delay, control._shutdown, args=(reason,)).start()
                    self._reply(202, Stopping(after_s=delay).to_json())
                elif self.path == MODEL_PATH and isinstance(body.get("model"), str):
                    self._carry_out(ControlRequest("switch-model", body["model"]))
                elif self.path == MODEL_PATH:
                    self._reply(400, {"error": 'send {"model": NAME}'})
                else:
                    self._reply(404, {"error": f"no {self.path} here"})

            def _json_body(self) -> dict[str, Any] | None:
                """The request's JSON object, or None after answering 400."""
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    if not 0 <= length <= MAX_BODY:
                        raise ValueError(length)
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._reply(400, {"error": "the body is not JSON"})
                    return None
                if not isinstance(body, dict):
                    self._reply(400, {"error": "the body must be a JSON object"})
                    return None
                return body

            def _carry_out(self, request: ControlRequest) -> None:
                control.requests.put(request)
                try:
                    result = request.reply.result(timeout=control._request_timeout)
                except OpeaChatError as error:
                    self._reply(409, {"error": error.one_line()})
                except TimeoutError:
                    self._reply(504, {"error": "the launcher did not finish in time"})
                else:
                    self._reply(200, result.to_json())

        return Handler


class ControlClient:
    """The CLI's and the app's end of the channel, from a session file's record."""

    def __init__(self, port: int, token: str, timeout: float = 5.0):
        self.base_url = f"http://{HOST}:{port}"
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, trust_env=False,
                                  headers={"Authorization": f"Bearer {token}"})

    @classmethod
    def from_session(cls, record: SessionRecord | None,
                     timeout: float = 5.0) -> ControlClient | None:
        if record is None or record.control is None:
            return None
        return cls(record.control.port, record.control.token, timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              timeout: float | None = None) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, json=body,
                                          timeout=timeout or self._http.timeout)
        except httpx.HTTPError as error:
            raise ControlError(f"the running launcher did not answer ({type(error).__name__})",
                               hint="it may have been killed: `opea-chat stop` cleans up"
                               ) from error
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise ControlError(f"the running launcher answered HTTP {response.status_code} "
                               "without a JSON object")
        if response.is_error:
            raise ControlError(str(answer.get("error") or f"HTTP {response.status_code}"))
        return answer

    def _read(self, reader: Callable[[Any], T], answer: dict[str, Any]) -> T:
        try:
            return reader(answer)
        except RecordError as error:
            raise ControlError(f"the running launcher's answer is not understood "
                               f"({error.message})", hint="is it another opea-chat version? "
                               "`opea-chat stop`, then launch again") from error

    def status(self) -> StatusReport:
        return self._read(StatusReport.from_json, self._call("GET", STATUS_PATH))

    def shutdown(self, reason: str, after_s: float = 0.0) -> Stopping:
        return self._read(Stopping.from_json, self._call(
            "POST", SHUTDOWN_PATH, {"reason": reason, "after_s": after_s}))

    def switch_model(self, model: str, timeout: float) -> ModelSwitch:
        return self._read(ModelSwitch.from_json, self._call(
            "POST", MODEL_PATH, {"model": model}, timeout=timeout))
