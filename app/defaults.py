"""What a new conversation starts with: the user's default system prompt and parameters.

Kept in the history file's settings, so they hold across conversations and launches; each
conversation's own panel then overrides them for that conversation only.
"""

from __future__ import annotations

from app.history import Conversation, History, params_from_json, params_to_json
from opea.client import ChatParams

SYSTEM_PROMPT = "default_system_prompt"
PARAMS = "default_params"


def defaults(history: History) -> tuple[str, ChatParams]:
    system = history.setting(SYSTEM_PROMPT, "")
    stored = history.setting(PARAMS, None)
    params = params_from_json(stored if isinstance(stored, str) else None)
    return (system if isinstance(system, str) else ""), params or ChatParams()


def save_defaults(history: History, system_prompt: str, params: ChatParams) -> None:
    history.set_setting(SYSTEM_PROMPT, system_prompt)
    history.set_setting(PARAMS, params_to_json(params))


def new_conversation(history: History) -> Conversation:
    system_prompt, params = defaults(history)
    return history.create_conversation(system_prompt=system_prompt, params=params)
