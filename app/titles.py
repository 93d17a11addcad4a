"""Short conversation titles written by the model after the first answer.

A conversation is first named by the first line of its first question (``title_from``);
that stays the title whenever the model's is not usable. The model is asked only once the
first answer is stored, and only while the title is still that first line (a rename by
the user wins); ``app.generation`` sends the request, so that it never delays an answer.
"""

from __future__ import annotations

import re

from app.history import AnswerStatus, History, Message, title_from
from opea.client import ChatParams

SETTING = "model_titles"  # the user's switch in Settings (on unless turned off)
# Few tokens and little freedom: a title is short, and the request must end soon.
TITLE_PARAMS = ChatParams(max_tokens=16, temperature=0.2, top_p=0.95)
SHOWN_CHARS = 600  # of the question and of the answer: enough to name them, quick to read
MAX_TITLE_CHARS = 60
INSTRUCTION = ("Write a title of at most six words for the conversation below. Reply with "
               "the title only, without quotes.")
_LABEL = re.compile(r"^(title|topic|subject)\s*:\s*", re.IGNORECASE)
_WRAPPING = "\"'`*_#\u201c\u201d\u2018\u2019\u00ab\u00bb "


def title_messages(question: str, answer: str) -> list[dict[str, str]]:
    """What the model is asked: the instruction, then the start of the exchange."""
    return [{"role": "user", "content": f"{INSTRUCTION}\n\nQuestion: "
                                        f"{question[:SHOWN_CHARS]}\n\nAnswer: "
                                        f"{answer[:SHOWN_CHARS]}"}]


def clean_title(text: str) -> str | None:
    """The title in the model's reply, or None when there is none worth showing."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    line = _LABEL.sub("", line.strip(_WRAPPING)).strip(_WRAPPING).rstrip(".!:;,").strip()
    line = " ".join(line.split())
    if not any(character.isalnum() for character in line):
        return None
    if len(line) > MAX_TITLE_CHARS:
        line = line[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return line


def wants_title(history: History, answer: Message) -> tuple[str, str] | None:
    """The question and answer to name a conversation from, when the user wants model
    titles, ``answer`` is the conversation's first, complete, and the title is still the
    first line of the question."""
    if not history.setting(SETTING, True):
        return None
    if answer.status is not AnswerStatus.COMPLETE or not answer.content.strip():
        return None
    conversation = history.conversation(answer.conversation_id)
    messages = history.messages(answer.conversation_id)
    if conversation is None or [m.role for m in messages] != ["user", "assistant"] \
            or messages[-1].id != answer.id:
        return None
    question = messages[0].content
    if conversation.title != title_from(question):
        return None  # renamed by the user, or already named by the model
    return question, answer.content
