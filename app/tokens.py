"""Counting tokens, to fit a conversation into the model's context window.

Exact when the model is a GGUF file on this machine (its own tokenizer, loaded without the
weights: ~0.3 s, ~60 MB); otherwise a deliberately pessimistic estimate, since counting
too few tokens makes the LLM server refuse the request while counting too many only leaves
out an old turn early.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from pathlib import Path

TokenCounter = Callable[[str], int]
_PIECES = re.compile(r" ?[A-Za-z]+|.", re.DOTALL)
_log = logging.getLogger(__name__)


def estimate_tokens(text: str) -> int:
    """An upper estimate for BPE tokenizers, tested against SmolLM2's: a token per three
    letters of an ASCII word (with the space before it), one per letter of a word glued to
    digits (hex, identifiers), one per digit (numbers are often split digit by digit), per
    other ASCII character, and per UTF-8 byte beyond ASCII (CJK text and emoji often take
    two or three tokens a character)."""
    total = 0
    for match in _PIECES.finditer(text):
        piece = match.group()
        if piece[-1].isascii() and piece[-1].isalpha():
            letters = len(piece.lstrip(" "))
            glued = text[match.start() - 1: match.start()].isdigit() \
                or text[match.end(): match.end() + 1].isdigit()
            total += letters + (piece[0] == " ") if glued else math.ceil(letters / 3)
        elif piece.isascii():
            total += 1
        else:
            total += len(piece.encode("utf-8"))
    return total


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
