"""The local runtime's LLM server: llama-cpp-python's OpenAI server, answering only this machine.

``python -m llama_cpp.server`` adds a CORS policy that reflects any ``Origin`` with
credentials and answers any ``Host``, so a web page whose name was re-pointed at 127.0.0.1
(DNS rebinding) could use the model. This entry point builds the same app, takes that CORS
policy out (nothing in a browser talks to the LLM directly) and puts the Host/Origin guard
in front of it. It takes llama_cpp.server's own flags, plus ``--allowed-host NAME``
(repeatable) for a name, besides the loopback ones, that may address it.

Run: ``python -m opea.llm_server --model FILE --host 127.0.0.1 --port 9009 ...``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from functools import wraps
from typing import Any, cast

import llama_cpp
import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from llama_cpp.server.app import create_app
from llama_cpp.server.cli import add_args_from_model, parse_model_from_args
from llama_cpp.server.settings import ModelSettings, ServerSettings, Settings

from opea.host_guard import LOOPBACK_NAMES, HostGuard


def without_cors(app: FastAPI) -> FastAPI:
    """``app`` with its CORS middleware removed (the stack is built on its first request)."""
    app.user_middleware = [entry for entry in app.user_middleware
                           if getattr(entry, "cls", None) is not CORSMiddleware]
    return app


def report_stream_errors() -> None:
    """Make a failure inside a streamed answer the stream's last event.

    llama_cpp.server starts streaming (HTTP 200) before the model sees the prompt; a prompt
    longer than the context then raises inside the stream and the server just ends it, so
    its client cannot tell a failure from an empty answer. Here the error becomes a final
    ``{"error": {"message": ...}}`` event, as llama.cpp's own server sends one. The server's
    streaming route calls ``Llama.create_chat_completion`` through the class, so this
    process-wide wrap (in this entry point only) is where to catch it.
    """
    original = llama_cpp.Llama.create_chat_completion

    @wraps(original)
    def create_chat_completion(self: llama_cpp.Llama, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        return _with_error_event(cast(Iterator[Any], result)) if kwargs.get("stream") else result

    llama_cpp.Llama.create_chat_completion = create_chat_completion  # type: ignore[method-assign]


def _with_error_event(chunks: Iterator[Any]) -> Iterator[Any]:
    try:
        yield from chunks
    except ValueError as error:  # llama_cpp's way to refuse a request (context, tokens)
        yield {"error": {"message": str(error), "type": "invalid_request_error"}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m opea.llm_server")
    add_args_from_model(parser, Settings)
    parser.add_argument("--allowed-host", action="append", default=[],
                        help="a host name, besides the loopback ones, that may address it")
    args = parser.parse_args(argv)
    # llama_cpp types it as returning the class; it returns an instance.
    server = cast(ServerSettings, parse_model_from_args(ServerSettings, args))
    model = cast(ModelSettings, parse_model_from_args(ModelSettings, args))
    report_stream_errors()
    app = without_cors(create_app(server_settings=server, model_settings=[model]))
    allowed = LOOPBACK_NAMES | {name.lower() for name in args.allowed_host}
    uvicorn.run(HostGuard(app, allowed), host=server.host, port=server.port)


if __name__ == "__main__":
    main()
