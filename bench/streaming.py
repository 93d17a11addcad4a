"""Streaming through the OPEA megaservice (with the app's client) against the llama.cpp
server asked directly, with the same prompts and settings, alternating the two so that
drift on a shared machine hits both alike; and 8 concurrent streams each way."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx

from opea.client import ChatParams, OpeaClient

TOPICS = ("the sea", "mountains", "bread", "trains", "owls", "rain", "chess", "tea",
          "bees", "maps", "clocks", "rivers", "glass", "kites", "salt", "moss")
MAX_TOKENS = 128


@dataclass
class Stream:
    first_token: float  # seconds from sending the request
    pieces: int
    total: float

    @property
    def tokens_per_second(self) -> float:
        generating = self.total - self.first_token
        return (self.pieces - 1) / generating if generating > 0 and self.pieces > 1 else 0.0


def _prompt(number: int) -> str:
    # A new prompt every time: llama.cpp reuses a cached prefix of a repeated prompt, which
    # would flatter whichever path came second.
    return f"Write a short paragraph about {TOPICS[number % len(TOPICS)]}, take {number}."


def _timed(pieces: Iterator[str]) -> Stream:
    started = time.monotonic()
    first = None
    count = 0
    for _ in pieces:
        if first is None:
            first = time.monotonic() - started
        count += 1
    return Stream(first or float("nan"), count, time.monotonic() - started)


def direct_pieces(llm_url: str, prompt: str, model: str) -> Iterator[str]:
    """The llama.cpp server's OpenAI stream, one piece per content delta."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": MAX_TOKENS, "temperature": 0.0, "top_p": 0.95, "stream": True}
    with httpx.stream("POST", f"{llm_url}/v1/chat/completions", json=body, timeout=300,
                      trust_env=False) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            delta = json.loads(line[5:])["choices"][0]["delta"].get("content")
            if delta:
                yield delta


def megaservice_pieces(client: OpeaClient, prompt: str) -> Iterator[str]:
    return client.chat_stream(prompt, ChatParams(max_tokens=MAX_TOKENS, temperature=0.0,
                                                 top_p=0.95))


def compare(llm_url: str, megaservice_url: str, model: str, runs: int) -> dict[str, object]:
    direct: list[Stream] = []
    through: list[Stream] = []
    with OpeaClient(megaservice_url) as client:
        _timed(megaservice_pieces(client, "Warm up."))  # first-request costs, both paths
        for run in range(runs):
            pair = [lambda n=2 * run: direct.append(_timed(direct_pieces(llm_url, _prompt(n),
                                                                         model))),
                    lambda n=2 * run + 1: through.append(_timed(megaservice_pieces(
                        client, _prompt(n))))]
            for measure in (pair if run % 2 == 0 else reversed(pair)):
                measure()
    direct_rate = statistics.median(s.tokens_per_second for s in direct)
    through_rate = statistics.median(s.tokens_per_second for s in through)
    direct_first = statistics.median(s.first_token for s in direct)
    through_first = statistics.median(s.first_token for s in through)
    return {
        "runs": runs,
        "direct_tokens_per_s": direct_rate,
        "megaservice_tokens_per_s": through_rate,
        "tokens_per_s_ratio": through_rate / direct_rate,
        "direct_first_token_s": direct_first,
        "megaservice_first_token_s": through_first,
        "added_first_token_ms": (through_first - direct_first) * 1000,
    }


def concurrent(llm_url: str, megaservice_url: str, model: str, streams: int = 8,
               rounds: int = 3) -> dict[str, object]:
    """Total throughput of ``streams`` answers at once, each way; ``rounds`` rounds, the
    order alternating, medians reported (one round alone is at the mercy of the machine)."""

    def run(make: Callable[[int], Iterator[str]]) -> float:
        results: list[Stream] = []
        lock = threading.Lock()

        def one(number: int) -> None:
            stream = _timed(make(number))
            with lock:
                results.append(stream)

        started = time.monotonic()
        threads = [threading.Thread(target=one, args=(n,)) for n in range(streams)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(s.pieces for s in results) / (time.monotonic() - started)

    direct: list[float] = []
    through: list[float] = []
    with OpeaClient(megaservice_url) as client:
        for round_ in range(rounds):
            base = 100 + round_ * streams * 2

            def direct_stream(n: int, base: int = base) -> Iterator[str]:
                return direct_pieces(llm_url, _prompt(base + n), model)

            def opea_stream(n: int, base: int = base) -> Iterator[str]:
                return megaservice_pieces(client, _prompt(base + streams + n))

            # Alternate which side goes first so neither always gets the warmer machine.
            ways = [(direct, direct_stream), (through, opea_stream)]
            for rates, make in (ways if round_ % 2 == 0 else reversed(ways)):
                rates.append(run(make))
    direct_rate, through_rate = statistics.median(direct), statistics.median(through)
    return {"streams": streams, "rounds": rounds, "direct_tokens_per_s": direct_rate,
            "megaservice_tokens_per_s": through_rate, "ratio": through_rate / direct_rate}
