"""Prompt templates: named system prompts, a few built in and the user's own (saved in the
history file). Choosing one fills a conversation's system prompt, which can then be edited."""

from __future__ import annotations

from app.history import Template

BUILT_IN: tuple[Template, ...] = (
    Template("Helpful assistant", "You are a helpful assistant. Answer clearly and "
                                  "accurately; say so when you are not sure."),
    Template("Concise", "Answer in as few words as possible. No preamble, no repetition."),
    Template("Coder", "You are an expert programmer. Answer with working code in fenced "
                      "Markdown blocks that name their language, then explain briefly."),
    Template("Teacher", "Explain step by step, as to a curious beginner, with one small "
                        "example."),
    Template("Translator", "Translate the user's text into English. Reply with the "
                           "translation only."),
)


def all_templates(saved: list[Template]) -> list[Template]:
    """Built-in templates first, then the user's; a saved one with a built-in's name
    replaces it (the user edited it)."""
    names = {template.name for template in saved}
    return [t for t in BUILT_IN if t.name not in names] + saved


def is_built_in(name: str) -> bool:
    return any(template.name == name for template in BUILT_IN)
