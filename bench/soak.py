"""A soak: many chats, several at a time, through the megaservice; every one must answer,
and no service may keep growing (resident memory after all of them against after the
first few dozen)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import psutil

from opea.client import ChatParams, OpeaClient


def rss_mb(pids: dict[str, int]) -> dict[str, float]:
    return {name: psutil.Process(pid).memory_info().rss / 1e6 for name, pid in pids.items()}


def soak(megaservice_url: str, pids: dict[str, int], total: int = 300, parallel: int = 8,
         checkpoint: int = 50) -> dict[str, object]:
    checkpoint = min(checkpoint, max(1, total // 6))
    errors: list[str] = []
    done = 0
    lock = threading.Lock()
    after_checkpoint: dict[str, float] = {}

    def chat(number: int, client: OpeaClient) -> None:
        nonlocal done
        try:
            text = "".join(client.chat_stream(f"Give me one word about the number {number}.",
                                              ChatParams(max_tokens=24)))
            if not text.strip():
                raise RuntimeError("empty answer")
        except Exception as error:  # a soak counts every failure, whatever it is
            with lock:
                errors.append(f"{type(error).__name__}: {error}")
        with lock:
            done += 1
            if done == checkpoint:
                after_checkpoint.update(rss_mb(pids))

    with OpeaClient(megaservice_url, read_timeout=120) as client, \
            ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(lambda n: chat(n, client), range(total)))
    after_all = rss_mb(pids)
    growth = {name: after_all[name] / after_checkpoint[name] - 1 for name in after_all}
    return {"chats": total, "parallel": parallel, "errors": len(errors),
            "first_errors": errors[:5], f"rss_mb_after_{checkpoint}": after_checkpoint,
            f"rss_mb_after_{total}": after_all, "rss_growth": growth}
