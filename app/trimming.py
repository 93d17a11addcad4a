"""Fitting a conversation into the model's context window.

The request is the system prompt, then as many of the most recent turns as fit, then the
new question; room for the answer (``max_tokens``) is kept. Turns leave from the oldest,
whole (a question with its answer), and the caller is told how many left. The system prompt
and the new question are never dropped: when they alone do not fit, that is an error that
says what to change.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import ContextOverflowError
from app.tokens import TokenCounter

Message = dict[str, str]
# The chat template wraps each message in a few tokens (SmolLM2: <|im_start|>role\n ...
# <|im_end|>\n); some templates also add a default system prompt and a generation prompt.
PER_MESSAGE_TOKENS = 8
FIXED_TOKENS = 48


@dataclass(frozen=True)
class Fitted:
    messages: list[Message]
    left_out: int  # earlier turns (questions with their answers) not sent
    prompt_tokens: int  # as counted here, template allowance included


def turns(history: list[Message]) -> list[list[Message]]:
    """Group messages into turns, each starting at a question."""
    grouped: list[list[Message]] = []
    for message in history:
        if message["role"] == "user" or not grouped:
            grouped.append([message])
        else:
            grouped[-1].append(message)
    return grouped


def fit_to_context(system_prompt: str, history: list[Message], question: str,
                   context_size: int, max_tokens: int, count: TokenCounter) -> Fitted:
    def cost(text: str) -> int:
        return count(text) + PER_MESSAGE_TOKENS

    budget = context_size - max_tokens - FIXED_TOKENS
    fixed = cost(question) + (cost(system_prompt) if system_prompt.strip() else 0)
    if fixed > budget:
        raise ContextOverflowError(
            f"the question{' and system prompt' if system_prompt.strip() else ''} take about "
            f"{fixed:,} tokens, more than fit in the model's {context_size:,}-token context "
            f"with {max_tokens:,} kept for the answer",
            hint="shorten it, lower Max tokens, or launch with a larger --context-size")
    kept: list[list[Message]] = []
    used = fixed
    grouped = turns(history)
    for turn in reversed(grouped):
        turn_cost = sum(cost(message["content"]) for message in turn)
        if used + turn_cost > budget:
            break
        kept.insert(0, turn)
        used += turn_cost
    messages = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    messages += [message for turn in kept for message in turn]
    messages.append({"role": "user", "content": question})
    return Fitted(messages=messages, left_out=len(grouped) - len(kept),
                  prompt_tokens=used + FIXED_TOKENS)
