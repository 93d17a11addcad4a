"""`opea-chat chat ["QUESTION"]`: a terminal chat with the running session, through the
same OPEA client as the app.

One question (argument or piped stdin) gets one streamed answer. Without one, on a
terminal, it is a conversation: Ctrl+C stops the answer being written (the HTTP stream is
closed, so the model stops too); Ctrl+C at the prompt, or Ctrl+D, leaves.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from typing import IO

from launcher.paths import Paths
from launcher.session_file import read_session
from launcher.stop import running_launcher
from opea.client import ChatParams, Message, OpeaClient
from opea.errors import ServiceUnreachableError


@dataclass(frozen=True)
class AnswerStats:
    pieces: int
    first_token_s: float | None
    total_s: float

    def describe(self) -> str:
        if self.first_token_s is None:
            return "no answer"
        generating = self.total_s - self.first_token_s
        rate = (self.pieces - 1) / generating if generating > 0 and self.pieces > 1 else 0.0
        return (f"time to first token {self.first_token_s:.2f} s, {rate:.1f} tokens/s "
                f"({self.pieces} tokens in {self.total_s:.2f} s)")


def megaservice_url(paths: Paths) -> str:
    record = read_session(paths.session_file)
    if running_launcher(record) is None or record is None:
        raise ServiceUnreachableError("opea-chat is not running",
                                      hint="start it with `opea-chat launch`")
    return record.urls["megaservice"]


def answer(client: OpeaClient, messages: list[Message], params: ChatParams,
           out: IO[str]) -> tuple[str, AnswerStats]:
    """Stream one answer to ``out``; Ctrl+C stops it early (KeyboardInterrupt is raised
    after the stream was closed, with what was written kept)."""
    started = time.monotonic()
    first: float | None = None
    pieces: list[str] = []
    stream = client.chat_stream(messages, params)
    try:
        for piece in stream:
            if first is None:
                first = time.monotonic() - started
            pieces.append(piece)
            out.write(piece)
            out.flush()
    finally:
        stream.close()  # closes the HTTP stream: the model stops generating
        out.write("\n")
    return "".join(pieces), AnswerStats(len(pieces), first, time.monotonic() - started)


def chat(paths: Paths, question: str | None, stats: bool, max_tokens: int,
         stdin: IO[str] = sys.stdin, out: IO[str] = sys.stdout) -> int:
    # Ctrl+C is how this command is driven. A process started from a non-interactive
    # shell's background job inherits SIGINT ignored (and Python then leaves it so): take
    # it back, or Ctrl+C would do nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    params = ChatParams(max_tokens=max_tokens)
    with OpeaClient(megaservice_url(paths)) as client:
        if question is None and not stdin.isatty():
            question = stdin.read().strip()
        if question:
            _, measured = answer(client, [{"role": "user", "content": question}], params, out)
            if stats:
                print(measured.describe(), file=out)
            return 0
        return _conversation(client, params, stats, stdin, out)


def _conversation(client: OpeaClient, params: ChatParams, stats: bool, stdin: IO[str],
                  out: IO[str]) -> int:
    print("Chatting with the running opea-chat. Ctrl+C stops an answer; Ctrl+D or Ctrl+C "
          "at the prompt leaves.", file=out)
    messages: list[Message] = []
    while True:
        try:
            out.write("> ")
            out.flush()
            line = stdin.readline()
        except KeyboardInterrupt:
            out.write("\n")
            return 0
        if not line:
            return 0
        if not line.strip():
            continue
        messages.append({"role": "user", "content": line.strip()})
        try:
            text, measured = answer(client, messages, params, out)
        except KeyboardInterrupt:
            print("(stopped)", file=out)
            messages.pop()
            continue
        messages.append({"role": "assistant", "content": text})
        if stats:
            print(measured.describe(), file=out)
