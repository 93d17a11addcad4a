"""Counting tokens, to fit a conversation into the model's context window.

Exact when the model is a GGUF file on this machine (its own tokenizer, loaded without the
weights: ~0.3 s, ~60 MB); otherwise a deliberately pessimistic estimate, since counting
too few tokens makes the LLM server refuse the request while counting too many only leaves
out an old turn early.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

TokenCounter = Callable[[str], int]
_log = logging.getLogger(__name__)


def estimate_tokens(text: str) -> int:
    """An upper estimate for BPE tokenizers: a token per three ASCII letters or spaces, one
    per digit and per other ASCII symbol, one per byte of anything beyond ASCII (CJK text
    and emoji often take two or three tokens a character)."""
    letters = other = 0
    for character in text:
        if character.isascii():
            if character.isalpha() or character == " ":
                letters += 1
            else:
                other += 1  # digits: many tokenizers split numbers into single digits
        else:
            other += len(character.encode("utf-8"))
    return math.ceil(letters / 3) + other


def gguf_counter(model_path: str | Path) -> TokenCounter | None:
    """The model's own tokenizer, or None when the file cannot be read as GGUF here."""
    path = Path(model_path)
    if path.suffix != ".gguf" or not path.is_file():
        return None
    try:
        import llama_cpp

        vocabulary = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    except Exception as exc:  # any failure just means: estimate instead
        _log.warning("cannot load the tokenizer of %s (%s); estimating tokens", path, exc)
        return None

    def count(text: str) -> int:
        return len(vocabulary.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    return count
