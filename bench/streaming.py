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
    text: str

    @property
    def tokens_per_second(self) -> float:
        generating = self.total - self.first_token
        return (self.pieces - 1) / generating if generating > 0 and self.pieces > 1 else 0.0


def _prompt(number: int) -> str:
    # Numbered so that neighbouring requests differ: llama.cpp reuses the evaluated prompt
    # of a request that repeats the previous one, which would flatter the second.
    return f"Write a short paragraph about {TOPICS[number % len(TOPICS)]}, take {number}."


def _timed(pieces: Iterator[str]) -> Stream:
    started = time.monotonic()
    first = None
    text = []
    for piece in pieces:
        if first is None:
            first = time.monotonic() - started
        text.append(piece)
    return Stream(first or float("nan"), len(text), time.monotonic() - started, "".join(text))


def _same_answers(direct: list[Stream], through: list[Stream]) -> str:
    """How many of the paired answers (same prompt each way) came out identical: the
    comparison is only fair when they do."""
    same = sum(a.text == b.text for a, b in zip(direct, through, strict=True))
    return f"{same} of {len(direct)}"


def direct_client() -> httpx.Client:
    """A long-lived client for the direct path, as the app's OPEA client is one: a new
    client per request costs each request a TLS context (~0.1 s here) and a connection."""
    return httpx.Client(timeout=300, trust_env=False,
                        limits=httpx.Limits(max_connections=None))


def direct_pieces(http: httpx.Client, llm_url: str, prompt: str, model: str
                  ) -> Iterator[str]:
    """The llama.cpp server's OpenAI stream, one piece per content delta."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": MAX_TOKENS, "temperature": 0.0, "top_p": 0.95, "stream": True}
    with http.stream("POST", f"{llm_url}/v1/chat/completions", json=body) as response:
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
    """Each prompt is asked both ways, so both paths generate the same answers (temperature
    0): with a different prompt per path one side got longer answers and won every time.
    The same prompt never goes twice in a row (direct 0, OPEA n-1, direct 1, OPEA 0, ...):
    llama.cpp would reuse the evaluated prompt and flatter the second."""
    direct: list[Stream] = []
    through: list[Stream] = []
    with OpeaClient(megaservice_url) as client, direct_client() as http:
        # First-request costs (connections, lazy imports), both paths.
        _timed(megaservice_pieces(client, "Warm up."))
        _timed(direct_pieces(http, llm_url, "Warm up too.", model))
        for run in range(runs):
            direct.append(_timed(direct_pieces(http, llm_url, _prompt(run), model)))
            through.append(_timed(megaservice_pieces(client, _prompt((run - 1) % runs))))
    # The machine is shared: its speed can halve for a while. Each prompt's two answers
    # are a second apart, so their ratio and difference are compared, not medians taken
    # over the whole run on each side.
    paired = [*through[1:], through[0]]
    ratios = [b.tokens_per_second / a.tokens_per_second
              for a, b in zip(direct, paired, strict=True)]
    direct_first = statistics.median(s.first_token for s in direct)
    through_first = statistics.median(s.first_token for s in through)
    return {
        "runs": runs,
        "same_answers": _same_answers(direct, paired),
        "direct_tokens_per_s": statistics.median(s.tokens_per_second for s in direct),
        "megaservice_tokens_per_s": statistics.median(s.tokens_per_second for s in through),
        "tokens_per_s_ratio": statistics.median(ratios),
        "tokens_per_s_ratios": ratios,
        "direct_first_token_s": direct_first,
        "megaservice_first_token_s": through_first,
        "added_first_token_ms": 1000 * statistics.median(
            b.first_token - a.first_token for a, b in zip(direct, paired, strict=True)),
    }


def concurrent(llm_url: str, megaservice_url: str, model: str, streams: int = 8,
               rounds: int = 5) -> dict[str, object]:
    """Total throughput of ``streams`` answers at once, each way; ``rounds`` rounds, the
    order alternating, medians reported (one round alone is at the mercy of the machine)."""

    def run(make: Callable[[int], Iterator[str]]) -> tuple[float, list[str]]:
        results: dict[int, Stream] = {}

        def one(number: int) -> None:
            results[number] = _timed(make(number))

        started = time.monotonic()
        threads = [threading.Thread(target=one, args=(n,)) for n in range(streams)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rate = sum(s.pieces for s in results.values()) / (time.monotonic() - started)
        return rate, [results[n].text for n in range(streams)]

    direct: list[float] = []
    through: list[float] = []
    same = 0
    with OpeaClient(megaservice_url) as client, direct_client() as http:
        for round_ in range(rounds):
            # Both ways answer the same prompts, a new set each round.
            base = 100 + round_ * streams

            def direct_stream(n: int, base: int = base) -> Iterator[str]:
                return direct_pieces(http, llm_url, _prompt(base + n), model)

            def opea_stream(n: int, base: int = base) -> Iterator[str]:
                return megaservice_pieces(client, _prompt(base + n))

            # Alternate which side goes first so neither always gets the warmer machine.
            ways = [(direct, direct_stream), (through, opea_stream)]
            answers = []
            for rates, make in (ways if round_ % 2 == 0 else reversed(ways)):
                rate, texts = run(make)
                rates.append(rate)
                answers.append(texts)
            same += sum(a == b for a, b in zip(*answers, strict=True))
    direct_rate, through_rate = statistics.median(direct), statistics.median(through)
    # Each round's two sides ran back to back: their ratio, not the ratio of the medians.
    ratios = [b / a for a, b in zip(direct, through, strict=True)]
    return {"streams": streams, "rounds": rounds, "same_answers": f"{same} of {streams * rounds}",
            "direct_tokens_per_s": direct_rate, "megaservice_tokens_per_s": through_rate,
            "ratio": statistics.median(ratios), "ratios": ratios}
