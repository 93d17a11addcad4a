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
from opea.sources import Source

PASSAGE_CHARS = 160  # of each source's passage, on one line


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


def format_sources(sources: list[Source]) -> str:
    """The sources of an answer as the terminal shows them, best first."""
    lines = ["Sources:"]
    for number, source in enumerate(sources, start=1):
        score = f" (score {source.score:.2f})" if source.score is not None else ""
        passage = " ".join(source.passage.split())
        if len(passage) > PASSAGE_CHARS:
            passage = passage[:PASSAGE_CHARS - 1].rstrip() + "…"
        lines += [f"  [{number}] {source.where()}{score}", f"      {passage}"]
    return "\n".join(lines)


def answer(client: OpeaClient, messages: list[Message], params: ChatParams,
           out: IO[str], use_documents: bool | None = None) -> tuple[str, AnswerStats]:
    """Stream one answer to ``out``, then its sources if it has any; Ctrl+C stops it early
    (KeyboardInterrupt is raised after the stream was closed, with what was written kept)."""
    started = time.monotonic()
    first: float | None = None
    pieces: list[str] = []
    sources: list[Source] = []
    stream = client.chat_stream(messages, params, use_documents=use_documents,
                                on_sources=sources.extend)
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
    if sources:
        print(format_sources(sources), file=out)
    return "".join(pieces), AnswerStats(len(pieces), first, time.monotonic() - started)


def chat(paths: Paths, question: str | None, stats: bool, max_tokens: int,
         stdin: IO[str] = sys.stdin, out: IO[str] = sys.stdout,
         use_documents: bool | None = None) -> int:
    # Ctrl+C is how this command is driven. A process started from a non-interactive
    # shell's background job inherits SIGINT ignored (and Python then leaves it so): take
    # it back, or Ctrl+C would do nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    params = ChatParams(max_tokens=max_tokens)
    with OpeaClient(megaservice_url(paths)) as client:
        if question is None and not stdin.isatty():
            question = stdin.read().strip()
        if question:
            _, measured = answer(client, [{"role": "user", "content": question}], params, out,
                                 use_documents)
            if stats:
                print(measured.describe(), file=out)
            return 0
        return _conversation(client, params, stats, stdin, out, use_documents)


def _conversation(client: OpeaClient, params: ChatParams, stats: bool, stdin: IO[str],
                  out: IO[str], use_documents: bool | None) -> int:
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
            text, measured = answer(client, messages, params, out, use_documents)
        except KeyboardInterrupt:
            print("(stopped)", file=out)
            messages.pop()
            continue
        messages.append({"role": "assistant", "content": text})
        if stats:
            print(measured.describe(), file=out)
