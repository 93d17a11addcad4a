"""How fast the chat is, measured against the real llama.cpp server and OPEA megaservice.

    .venv/bin/python -m bench.chat [--model PATH] [--runs N]

Prints time to first token and tokens per second (as the app measures them, on the client
side), how soon a stopped answer frees the LLM server, and what the history store and
trimming cost. Targets live here rather than as timed assertions in the tests.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from app.chat import AnswerStream, Setup, context_of, prepare
from app.generation import Generations
from app.history import AnswerMeta, History
from app.tokens import estimate_tokens, gguf_counter
from app.trimming import fit_to_context
from bench import streaming
from launcher.paths import resolve_paths
from models.store import resolve_model
from opea.client import ChatParams, OpeaClient
from tests.services import llm_server, megaservice

DISCONNECT = "Disconnected from client"


TOPICS = streaming.TOPICS[:8]


def streamed(client: OpeaClient, runs: int) -> tuple[list[float], list[float]]:
    """A new question each time: llama.cpp reuses the cached prefix of a repeated prompt,
    which would flatter the time to first token."""
    first, speed = [], []
    for run in range(runs):
        topic = TOPICS[run % len(TOPICS)]
        stream = AnswerStream(client.chat_stream(f"Write a short paragraph about {topic}.",
                                                 ChatParams(max_tokens=128)))
        for _ in stream.updates():
            pass
        if stream.first_token_seconds is not None:
            first.append(stream.first_token_seconds)
        if stream.tokens_per_second is not None:
            speed.append(stream.tokens_per_second)
    return first, speed


def stop_frees_the_server(client: OpeaClient, llm_log: Path) -> tuple[float, float]:
    """Seconds from closing a long answer until llama.cpp ends it, and the next request's
    time to first token."""
    seen = llm_log.read_text(errors="replace").count(DISCONNECT)
    story = client.chat_stream("Write a very long story about a lighthouse keeper.",
                               ChatParams(max_tokens=1500))
    for _ in range(20):
        next(story)
    closed = time.monotonic()
    story.close()
    while llm_log.read_text(errors="replace").count(DISCONNECT) == seen:
        if time.monotonic() - closed > 60:
            raise RuntimeError("the LLM server never saw the stream close")
        time.sleep(0.01)
    freed = time.monotonic() - closed
    stream = AnswerStream(client.chat_stream("Say hi to a lighthouse.",
                                             ChatParams(max_tokens=8)))
    for _ in stream.updates():
        pass
    return freed, stream.first_token_seconds or float("nan")


def _answered(generations: Generations, history: History, question: str
              ) -> tuple[int, float | None]:
    """Ask in a new conversation and wait for the stored answer: its conversation and its
    time to first token."""
    conversation = history.create_conversation(params=ChatParams(max_tokens=64))
    history.add_question(conversation.id, question, None, conversation.params)
    setup = Setup(model=None, context_size=4096, count=estimate_tokens, use_cache=False)
    generation = generations.start(prepare(history, conversation, setup))
    assert generation is not None and generation.done.wait(600)
    assert generation.stored is not None
    return conversation.id, generation.stored.first_token_seconds


def model_titles(client: OpeaClient, folder: Path, runs: int
                 ) -> tuple[list[float], int, list[float], list[float]]:
    """Seconds from a first answer being stored to the model's title being stored, how many
    titles were usable, and the next answer's time to first token asked right after a first
    answer, with titles on (the title request gives way) and off."""
    history = History(folder / "titles.sqlite3")
    generations = Generations(history, client, write_titles=True)
    waits: list[float] = []
    with_titles: list[float] = []
    without: list[float] = []
    written = 0
    for run in range(runs):
        topic = TOPICS[run % len(TOPICS)]
        question = f"In one sentence: what is {topic}?"
        conversation_id, _ = _answered(generations, history, question)
        stored = time.monotonic()
        while generations.title_pending(conversation_id):
            time.sleep(0.01)
        waits.append(time.monotonic() - stored)
        title = history.conversation(conversation_id)
        written += title is not None and title.title != question
        for on, firsts in ((True, with_titles), (False, without)):
            generations.write_titles = on
            # A first answer (its title is asked for), then at once the next question.
            one, _ = _answered(generations, history, f"Name one fact about {topic}.")
            two, first = _answered(generations, history, f"Another fact about {topic}?")
            if first is not None:
                firsts.append(first)
            while any(generations.title_pending(i) for i in (one, two)):
                time.sleep(0.01)
        generations.write_titles = True
    return waits, written, with_titles, without


def history_writes(folder: Path, count: int = 200) -> float:
    history = History(folder / "bench.sqlite3")
    conversation = history.create_conversation()
    start = time.perf_counter()
    for number in range(count):
        history.add_answer(conversation.id, f"answer {number} " + "word " * 100, AnswerMeta())
    return (time.perf_counter() - start) / count


def trimming(model: Path, folder: Path, turns: int = 500) -> float:
    count = gguf_counter(model)
    assert count is not None
    history = History(folder / "trim.sqlite3")
    conversation = history.create_conversation()
    for number in range(turns):
        history.add_question(conversation.id, f"question {number} " + "why " * 30, None,
                             ChatParams())
        history.add_answer(conversation.id, "because " * 60, AnswerMeta())
    start = time.perf_counter()
    fitted = fit_to_context("Be brief.", context_of(history.messages(conversation.id)),
                            "last?", 4096, 512, count)
    assert fitted.left_out > 0
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chat")
    parser.add_argument("--model", type=Path,
                        help="a .gguf file (default: smollm2-135m from the models folder)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    model = args.model or resolve_model("smollm2-135m", resolve_paths().models_dir).path
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        with llm_server(model, folder, context_size=4096) as llm, \
                megaservice(llm, folder) as url, OpeaClient(url) as client:
            first, speed = streamed(client, args.runs)
            freed, next_first = stop_frees_the_server(client, folder / "llm.log")
            waits, written, with_titles, without = model_titles(client, folder, args.runs)
        write = history_writes(folder)
        trim = trimming(model, folder)
    print(f"model                       {model.name}")
    print(f"time to first token         median {statistics.median(first):.3f} s "
          f"(min {min(first):.3f}, max {max(first):.3f}, {len(first)} answers)")
    print(f"tokens per second           median {statistics.median(speed):.1f} "
          f"(min {min(speed):.1f}, max {max(speed):.1f})")
    print(f"stop -> LLM server ends it  {freed * 1000:.0f} ms")
    print(f"next answer after a stop    first token in {next_first:.3f} s "
          "(a new prompt: compare with the line above)")
    print(f"model title after answer    median {statistics.median(waits):.2f} s "
          f"(max {max(waits):.2f}); usable {written} of {len(waits)}")
    print(f"next answer, titles on/off  first token median "
          f"{statistics.median(with_titles):.3f} s / {statistics.median(without):.3f} s "
          "(asked right after a first answer: the title request gives way)")
    print(f"history: one change         {write * 1000:.2f} ms (WAL, synchronous=FULL)")
    print(f"trimming 500 turns          {trim * 1000:.0f} ms (SmolLM2's own tokenizer)")


if __name__ == "__main__":
    main()
