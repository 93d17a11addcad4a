"""One conversation as a browser tab holds it: the turns so far, as OpenAI messages."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_INPUT_CHARS = 20_000


@dataclass
class Turn:
    role: str
    content: str
    error: str | None = None


@dataclass
class Conversation:
    turns: list[Turn] = field(default_factory=list)

    def add_question(self, text: str) -> None:
        self.turns.append(Turn("user", text))

    def add_answer(self, text: str) -> None:
        self.turns.append(Turn("assistant", text))

    def mark_failed(self, message: str) -> None:
        """Keep the question; note why it has no answer."""
        self.turns[-1].error = message

    def messages(self) -> list[dict[str, str]]:
        """What the model sees: every turn except questions that failed."""
        return [{"role": t.role, "content": t.content} for t in self.turns if t.error is None]

def input_problem(text: str) -> str | None:
    """Why a typed message should not be sent, or None."""
    if not text.strip():
        return "Type a question first."
    if len(text) > MAX_INPUT_CHARS:
        return f"That message is {len(text):,} characters; the limit is {MAX_INPUT_CHARS:,}."
    return None
