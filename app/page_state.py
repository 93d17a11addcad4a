"""The page's state between reruns, and what its buttons do to it and to the history.

Streamlit keeps ``st.session_state`` per browser tab; these functions take it as a plain
mutable mapping, so what a click does is testable without Streamlit. Widget keys are made
here too, one per conversation, so switching conversation shows that conversation's values.
"""

from __future__ import annotations

import datetime
from collections.abc import MutableMapping
from typing import Any

from app import defaults
from app.chat import input_problem
from app.history import Conversation, History, Message, Template
from opea.client import ChatParams

State = MutableMapping[Any, Any]  # st.session_state's keys may be str or int

CURRENT = "conversation_id"
ADDRESS = "address"  # the conversation id this page last put in the address (?c=)
ANSWER_FOR = "answer_for"  # a conversation whose last question is to be answered now
EDITING = "editing"  # the question being edited
EDIT_PROBLEM = "edit_problem"
UNDO = "undo_title"  # the title of the conversation just deleted
NOTICE = "notice"  # a one-time message for the next run
TOAST = "toast"  # a one-time passing message for the next run
TEMPLATE_NAME = "template_name"
PINNED = "Pinned"
SNIPPET_CHARS = 80


def key(name: str, conversation_id: int) -> str:
    return f"{name}-{conversation_id}"


def current_conversation(history: History, state: State, address: int | None
                         ) -> Conversation:
    """The conversation to show, which the page then writes into the address.

    A click (the tab's state) wins, unless the address changed since the page last wrote
    it (a reload of a bookmarked address, the browser's back button); then the one shown
    before; then an empty one (no pile of empty conversations); else a new one.
    """
    navigated = address is not None and address != state.get(ADDRESS)
    candidates = (address, state.get(CURRENT)) if navigated else (state.get(CURRENT), address)
    conversation = None
    for candidate in candidates:
        if candidate is not None and (found := history.conversation(candidate)):
            conversation = found
            break
    if conversation is None:
        empty = [c for c in history.conversations() if not c.message_count]
        conversation = empty[0] if empty else defaults.new_conversation(history)
    state[CURRENT] = state[ADDRESS] = conversation.id
    return conversation


def listed(conversations: list[Conversation]) -> list[Conversation]:
    """What the sidebar lists: conversations with messages (an empty one is the welcome
    page, reached with New conversation, not a row titled "New conversation")."""
    return [c for c in conversations if c.message_count]


def by_date(conversations: list[Conversation], now: float) -> list[tuple[str, list[Conversation]]]:
    """The sidebar's groups, newest first: the pinned ones, then the others by the day each
    was last used (local time): Today, Yesterday, Previous 7 days, Previous 30 days, Older."""
    today = datetime.date.fromtimestamp(now)
    groups: dict[str, list[Conversation]] = {}
    for conversation in conversations:
        if conversation.pinned:
            groups.setdefault(PINNED, []).append(conversation)
            continue
        age = (today - datetime.date.fromtimestamp(conversation.updated_at)).days
        label = "Today" if age <= 0 else "Yesterday" if age == 1 \
            else "Previous 7 days" if age < 7 else "Previous 30 days" if age < 30 \
            else "Older"
        groups.setdefault(label, []).append(conversation)
    order = (PINNED, "Today", "Yesterday", "Previous 7 days", "Previous 30 days", "Older")
    return [(label, groups[label]) for label in order if label in groups]


def snippet(text: str, needle: str, width: int = SNIPPET_CHARS) -> str:
    """The part of ``text`` around the first place it contains ``needle`` (ignoring case),
    on one line, about ``width`` characters, "…" where it is cut."""
    flat = " ".join(text.split())
    found = flat.casefold().find(" ".join(needle.split()).casefold())
    if found < 0 or len(flat) <= width:
        start = 0
    else:
        # The match a little after the start, so the words before it give the context.
        start = max(0, min(found - width // 4, len(flat) - width))
        if start:
            space = flat.find(" ", start, found)
            start = space + 1 if space >= 0 else start
    end = min(len(flat), start + width)
    if end < len(flat):
        space = flat.rfind(" ", start + width // 2, end)
        end = space if space > 0 else end
    return ("…" if start else "") + flat[start:end] + ("…" if end < len(flat) else "")


def select(state: State, conversation_id: int) -> None:
    state[CURRENT] = conversation_id
    state.pop(EDITING, None)


def new_conversation(history: History, state: State) -> None:
    current = state.get(CURRENT)
    if current is not None and history.conversation(current) and not history.messages(current):
        return  # already on an empty conversation
    conversation = defaults.new_conversation(history)
    select(state, conversation.id)


def delete(history: History, state: State, conversation: Conversation) -> None:
    history.delete(conversation.id)
    state[UNDO] = conversation.title
    state.pop(CURRENT, None)
    state.pop(EDITING, None)


def undo_delete(history: History, state: State) -> None:
    restored = history.undo_delete()
    state.pop(UNDO, None)
    if restored is not None:
        select(state, restored.id)


def rename(history: History, state: State, conversation_id: int) -> None:
    title = str(state.get(key("title", conversation_id), "")).strip()
    if title:
        history.rename(conversation_id, title)


def ask(history: History, state: State, conversation_id: int, text: str,
        model: str | None) -> None:
    """Send ``text`` as the conversation's next question (an example prompt, say)."""
    conversation = history.conversation(conversation_id)
    if conversation is None:
        return
    history.add_question(conversation_id, text, model, conversation.params)
    state[ANSWER_FOR] = conversation_id


def ask_again(history: History, state: State, conversation_id: int,
              from_message_id: int | None) -> None:
    """Retry: drop the failed answer (if any) and answer the question again."""
    if from_message_id is not None:
        history.remove_from(conversation_id, from_message_id)
    state[ANSWER_FOR] = conversation_id


def regenerate(history: History, state: State, conversation_id: int, answer_id: int) -> None:
    """Answer the last question again, keeping this answer as an earlier version."""
    history.set_aside_answer(answer_id)
    state[ANSWER_FOR] = conversation_id


def version_of(versions: list[Message], shown_id: int) -> tuple[int | None, int, int | None]:
    """Where the answer on screen is among its versions: the previous version's id (None:
    it is the first), its number counted from 1, and the next version's id."""
    ids = [version.id for version in versions]
    at = ids.index(shown_id) if shown_id in ids else len(ids) - 1
    return (ids[at - 1] if at > 0 else None, at + 1,
            ids[at + 1] if at + 1 < len(ids) else None)


def start_edit(state: State, message_id: int, text: str) -> None:
    state[EDITING] = message_id
    state[key("edit", message_id)] = text
    state.pop(EDIT_PROBLEM, None)


def cancel_edit(state: State) -> None:
    state.pop(EDITING, None)
    state.pop(EDIT_PROBLEM, None)


def send_edit(history: History, state: State, conversation_id: int, message_id: int) -> None:
    text = str(state.get(key("edit", message_id), ""))
    if problem := input_problem(text):
        state[EDIT_PROBLEM] = problem  # the edited text stays in its box
        return
    history.edit_question(message_id, text)
    cancel_edit(state)
    state[ANSWER_FOR] = conversation_id


def settings_keys(conversation: Conversation) -> dict[str, str]:
    return settings_keys_for(conversation.id)


def settings_keys_for(conversation_id: int) -> dict[str, str]:
    return {name: key(name, conversation_id)
            for name in ("system", "temperature", "top_p", "max_tokens", "template")}


def init_settings(state: State, conversation: Conversation) -> None:
    """Give the settings widgets this conversation's stored values, once."""
    keys = settings_keys(conversation)
    state.setdefault(keys["system"], conversation.system_prompt)
    state.setdefault(keys["temperature"], conversation.params.temperature)
    state.setdefault(keys["top_p"], conversation.params.top_p)
    state.setdefault(keys["max_tokens"], conversation.params.max_tokens)


def save_settings(history: History, state: State, conversation: Conversation) -> None:
    keys = settings_keys(conversation)
    params = ChatParams(max_tokens=int(state[keys["max_tokens"]]),
                        temperature=float(state[keys["temperature"]]),
                        top_p=float(state[keys["top_p"]]))
    history.configure(conversation.id, str(state[keys["system"]]), params)


def apply_template(history: History, state: State, conversation: Conversation,
                   templates: list[Template]) -> None:
    keys = settings_keys(conversation)
    chosen = state.get(keys["template"])
    for template in templates:
        if template.name == chosen:
            state[keys["system"]] = template.system_prompt
            save_settings(history, state, conversation)
            return


def save_template(history: History, state: State, system_key: str) -> None:
    """Save the system prompt under the name typed (before the page draws the list)."""
    name = str(state.get(TEMPLATE_NAME, "")).strip()
    if not name:
        return
    history.save_template(name, str(state.get(system_key, "")))
    state[TOAST] = f"Saved template “{name}”."


DEFAULT_KEYS = {"system": "default-system", "temperature": "default-temperature",
                "max_tokens": "default-max-tokens"}


def init_defaults(history: History, state: State) -> None:
    """Give the Settings widgets the stored defaults, once per tab."""
    system, params = defaults.defaults(history)
    state.setdefault(DEFAULT_KEYS["system"], system)
    state.setdefault(DEFAULT_KEYS["temperature"], params.temperature)
    state.setdefault(DEFAULT_KEYS["max_tokens"], params.max_tokens)


def save_defaults(history: History, state: State) -> None:
    _, stored = defaults.defaults(history)
    params = ChatParams(max_tokens=int(state[DEFAULT_KEYS["max_tokens"]]),
                        temperature=float(state[DEFAULT_KEYS["temperature"]]),
                        top_p=stored.top_p)
    system = str(state[DEFAULT_KEYS["system"]])
    defaults.save_defaults(history, system, params)
    # The empty conversation on screen is a new one too: it takes the defaults at once.
    current = state.get(CURRENT)
    if current is not None and history.conversation(current) and not history.messages(current):
        history.configure(current, system, params)
        # Its panel shows the new values. Set, not dropped: a dropped widget value comes
        # back from the browser, which still holds the old one, at the next rerun.
        keys = settings_keys_for(current)
        state[keys["system"]] = system
        state[keys["temperature"]] = params.temperature
        state[keys["top_p"]] = params.top_p
        state[keys["max_tokens"]] = params.max_tokens
