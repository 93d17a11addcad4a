"""When an answer may come from the cache, and under which key.

Only requests at temperature 0 qualify: the model is then (nearly) deterministic, so the
same model asked the same messages with the same parameters would answer the same. The key
covers everything that shapes the answer; the answers themselves live in the history file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from opea.client import ChatParams

SETTING = "answer_cache"  # the on/off switch, kept in the history's settings


def cacheable(params: ChatParams) -> bool:
    return params.temperature == 0


def cache_key(model: str | None, messages: list[dict[str, str]], params: ChatParams) -> str:
    canonical = json.dumps({"model": model, "messages": messages, "params": asdict(params)},
                           sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
