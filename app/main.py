"""The chat page: layout and widgets only.

The history store, the chat turn, trimming, rendering and the page's state live in plain
modules (``app.*``); long-lived objects come from ``st.cache_resource``.
"""

from __future__ import annotations

import os
import time
from itertools import chain
from pathlib import Path

import streamlit as st

from app import chat, documents_panel, page_state, session_actions, sources
from app.cache import SETTING as CACHE_SETTING
from app.errors import ContextOverflowError, HistoryError
from app.export import MAX_IMPORT_BYTES, parse_json, to_json, to_markdown
from app.history import FILE_NAME, AnswerStatus, Conversation, History, Message, set_aside
from app.page_state import ANSWER_FOR, EDIT_PROBLEM, EDITING, NOTICE, UNDO, key
from app.prompts import all_templates
from app.render import safe_markdown, typed_markdown
from app.stack_status import LiveStatus, StackInfo, live_status, stack_info
from app.tokens import TokenCounter, estimate_tokens, gguf_counter
from launcher import __version__
from launcher.paths import resolve_paths
from launcher.remote import app_client_options
from opea.client import OpeaClient
from opea.errors import OpeaChatError

PRODUCT = "opea-chat"
NEW_CONVERSATION_SHORTCUT = "Ctrl+Shift+O"
STOP_SHORTCUT = "Esc"
STOPPED = "stopped"


@st.cache_resource
def client(url: str) -> OpeaClient:
    # The remote runtime passes the endpoint's CA bundle and token in the environment.
    return OpeaClient(url, **app_client_options(os.environ))


@st.cache_resource(show_spinner=False)
def token_counter(model_path: str | None) -> TokenCounter:
    return (gguf_counter(model_path) if model_path else None) or estimate_tokens


@st.cache_resource(show_spinner=False)
def open_history(path: str) -> History:
    return History(Path(path))


@st.cache_data(ttl=5, show_spinner=False)
def status(info: StackInfo) -> LiveStatus:
    return live_status(info, timeout=1.0)


def stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def history_problem(error: HistoryError, unsaved: str | None = None) -> None:
    """The history cannot be used: say why, and offer the way out (the file is kept)."""
    st.error(error.one_line())
    if unsaved:
        with st.expander("Your message (not saved)", expanded=True):
            st.code(unsaved, language=None, wrap_lines=True)

    def start_fresh() -> None:
        kept = set_aside(Path(error.path), "old")
        open_history.clear()
        st.session_state.clear()
        st.session_state[NOTICE] = f"Started a fresh history; the old file is kept as {kept}"

    st.button("Start a fresh history", key="fresh_history", type="primary",
              on_click=start_fresh,
              help="Moves the current file aside (nothing is deleted) and starts a new one")
    st.button("Try again", key="retry_history", on_click=open_history.clear)
    st.stop()


def stats_line(message: Message) -> str:
    parts = [stamp(message.created_at)]
    if message.model:
        parts.append(message.model)
    if message.completion_tokens:
        parts.append(f"{message.completion_tokens} tokens")
    if message.first_token_seconds is not None and not message.cached:
        parts.append(f"first token {message.first_token_seconds:.2f} s")
    if message.tokens_per_second:
        parts.append(f"{message.tokens_per_second:.1f} tokens/s")
    if message.cached:
        parts.append("cached")
    return " · ".join(parts)


def sidebar(history: History, info: StackInfo, conversation: Conversation,
            last_speed: float | None) -> None:
    state = st.session_state
    with st.sidebar:
        st.button("New conversation", key="new", icon=":material/add:",
                  shortcut=NEW_CONVERSATION_SHORTCUT,
                  on_click=page_state.new_conversation, args=(history, state),
                  use_container_width=True)
        search = st.text_input("Search conversations", key="search",
                               placeholder="Search conversations", icon=":material/search:",
                               label_visibility="collapsed")
        found = page_state.listed(history.conversations(search), conversation.id)
        if search and not found:
            st.caption("No conversation contains that text.")
        for item in found:
            st.button(safe_markdown(item.title), key=f"open-{item.id}", use_container_width=True,
                      type="primary" if item.id == conversation.id else "tertiary",
                      on_click=page_state.select, args=(state, item.id))
        if state.get(UNDO):
            st.info(f"Deleted “{safe_markdown(state[UNDO])}”.")
            st.button("Undo delete", key="undo", icon=":material/undo:",
                      on_click=page_state.undo_delete, args=(history, state))
        documents_panel.panel(info)
        with st.expander("Model", icon=":material/memory:"):
            model_panel(info, last_speed)
        with st.expander("Settings", icon=":material/settings:"):
            st.toggle("Answer identical temperature-0 questions from the cache",
                      value=bool(history.setting(CACHE_SETTING, True)), key="cache_on",
                      on_change=lambda: history.set_setting(CACHE_SETTING,
                                                            bool(state["cache_on"])))
            if st.button("Empty the answer cache", key="empty_cache"):
                st.toast(f"Removed {history.clear_answer_cache()} cached answers.")
            st.caption(f"Keys: Enter sends · Shift+Enter new line · "
                       f"{NEW_CONVERSATION_SHORTCUT} new conversation · "
                       f"{STOP_SHORTCUT} stops an answer. Theme: ⋮ menu → Settings.")
        with st.expander("Backup", icon=":material/archive:"):
            backup(history)


def model_panel(info: StackInfo, last_speed: float | None) -> None:
    live = status(info)
    rows = [
        ("Runtime", info.runtime or "unknown (no session file)"),
        ("Model", info.model_name or "unknown"),
        ("File", info.model_path or "unknown"),
        ("Context", f"{info.context_size:,} tokens"),
        ("Device", live.device),
    ]
    st.markdown("\n".join(f"- **{name}:** {safe_markdown(value)}" for name, value in rows))
    for service in live.services:
        mark = ":green[:material/check_circle:]" if service.healthy \
            else ":red[:material/error:]"
        st.caption(f"{mark} {service.service} · {service.url} · {service.detail}")
    st.metric("Last answer", f"{last_speed:.1f} tokens/s" if last_speed else "none yet")
    if session_actions.can_control(info):
        model_switch(info)
        if st.button("Quit opea-chat", key="quit", icon=":material/power_settings_new:",
                     use_container_width=True):
            confirm_quit(info)


def model_switch(info: StackInfo) -> None:
    choices = session_actions.model_choices(info.model_name)
    if len(choices) < 2:
        st.caption("Pull or copy another model into the models folder to switch to it.")
        return
    chosen = st.selectbox("Switch the model", choices, key="switch_to")
    if st.button("Switch", key="switch", disabled=chosen == info.model_name):
        with st.spinner(f"Starting {chosen}; the other services keep running ..."):
            try:
                name = session_actions.switch_model(info, chosen)
            except OpeaChatError as error:
                st.error(error.one_line())
                return
        status.clear()
        st.session_state[NOTICE] = f"Now answering with {name}."
        st.rerun()


@st.dialog("Quit opea-chat?")
def confirm_quit(info: StackInfo) -> None:
    st.write("This stops every service opea-chat started (the model, the OPEA megaservice "
             "and this page). Your conversations are kept.")
    if st.button("Quit", key="quit_confirmed", type="primary"):
        try:
            session_actions.quit_session(info)
        except OpeaChatError as error:
            st.error(error.one_line())
            return
        st.session_state[STOPPED] = True
        st.rerun()


def stopped_page() -> None:
    st.title(PRODUCT, anchor=False)
    st.success("opea-chat has stopped: every service it started has ended. You can close "
               "this tab. Start it again with `opea-chat launch` or the desktop shortcut.")


def backup(history: History) -> None:
    state = st.session_state
    st.download_button(
        "Export all (JSON)", icon=":material/download:", file_name="opea-chat-backup.json",
        mime="application/json", on_click="ignore",
        data=lambda: to_json([(c, history.messages(c.id)) for c in history.conversations()]))
    uploader_key = f"import-{state.get('import_round', 0)}"
    upload = st.file_uploader("Import conversations (JSON)", type=["json"], key=uploader_key,
                              max_upload_size=MAX_IMPORT_BYTES // 1_000_000)
    if upload is not None:
        try:
            imported = parse_json(upload.getvalue())
        except OpeaChatError as error:
            st.error(error.one_line())
            return
        added = [history.import_conversation(c, m) for c, m in imported]
        state["import_round"] = state.get("import_round", 0) + 1
        if added:
            page_state.select(state, added[0].id)
        state[NOTICE] = f"Imported {len(added)} conversation{'s' * (len(added) != 1)}."
        st.rerun()


def conversation_header(history: History, conversation: Conversation,
                        messages: list[Message]) -> None:
    state = st.session_state
    title_column, menu_column = st.columns([5, 1], vertical_alignment="center")
    # Titles come from typed or imported text: rendered as safely as answers.
    title_column.subheader(safe_markdown(conversation.title), anchor=False)
    with menu_column.popover("", icon=":material/more_horiz:", help="Conversation actions"):
        state.setdefault(key("title", conversation.id), conversation.title)
        st.text_input("Title", key=key("title", conversation.id), on_change=page_state.rename,
                      args=(history, state, conversation.id))
        slug = "".join(c if c.isalnum() else "-" for c in conversation.title.lower())[:40]
        st.download_button("Export Markdown", data=to_markdown(conversation, messages),
                           file_name=f"{slug or 'conversation'}.md", mime="text/markdown",
                           icon=":material/description:", on_click="ignore")
        st.download_button("Export JSON", data=to_json([(conversation, messages)]),
                           file_name=f"{slug or 'conversation'}.json",
                           mime="application/json", icon=":material/data_object:",
                           on_click="ignore")
        st.button("Delete conversation", key="delete", icon=":material/delete:",
                  type="primary",
                  on_click=page_state.delete, args=(history, state, conversation))


def settings_panel(history: History, conversation: Conversation, info: StackInfo) -> None:
    state = st.session_state
    page_state.init_settings(state, conversation)
    keys = page_state.settings_keys(conversation)
    templates = all_templates(history.templates())
    save, save_args = page_state.save_settings, (history, state, conversation)
    with st.expander("System prompt and parameters", icon=":material/tune:"):
        st.selectbox("Template", [t.name for t in templates], index=None,
                     placeholder="Fill the system prompt from a template", key=keys["template"],
                     on_change=page_state.apply_template,
                     args=(history, state, conversation, templates))
        st.text_area("System prompt", key=keys["system"], height=100,
                     placeholder="How the model should behave in this conversation",
                     on_change=save, args=save_args)
        name_column, save_column = st.columns([3, 1], vertical_alignment="bottom")
        name = name_column.text_input("Save this prompt as a template", key="template_name",
                                      placeholder="Template name")
        if save_column.button("Save", key="save_template", disabled=not name.strip()):
            history.save_template(name, str(state[keys["system"]]))
            st.toast(f"Saved template “{safe_markdown(name.strip())}”.")
        temperature, top_p, max_tokens = st.columns(3)
        temperature.slider("Temperature", 0.0, 2.0, step=0.05, key=keys["temperature"],
                           on_change=save, args=save_args)
        top_p.slider("Top-p", 0.05, 1.0, step=0.05, key=keys["top_p"], on_change=save,
                     args=save_args)
        max_tokens.number_input("Max tokens", 16, max(64, info.context_size // 2), step=64,
                                key=keys["max_tokens"], on_change=save, args=save_args)


def show_message(history: History, conversation: Conversation, message: Message,
                 is_last: bool) -> None:
    state = st.session_state
    with st.chat_message(message.role):
        if message.role == "user":
            if state.get(EDITING) == message.id:
                st.text_area("Edit your question", key=key("edit", message.id))
                if state.get(EDIT_PROBLEM):
                    st.warning(state[EDIT_PROBLEM])
                send, cancel, _ = st.columns([1, 1, 4])
                send.button("Send", key=f"send-edit-{message.id}", type="primary",
                            on_click=page_state.send_edit,
                            args=(history, state, conversation.id, message.id))
                cancel.button("Cancel", key=f"cancel-edit-{message.id}",
                              on_click=page_state.cancel_edit, args=(state,))
                return
            st.markdown(typed_markdown(message.content))
            text, edit = st.columns([6, 1], vertical_alignment="center")
            text.caption(stamp(message.created_at))
            edit.button("", key=f"edit-button-{message.id}", icon=":material/edit:",
                        type="tertiary",
                        help="Edit and resend (replaces what came after)",
                        on_click=page_state.start_edit, args=(state, message.id,
                                                              message.content))
            if is_last and state.get(ANSWER_FOR) != conversation.id:
                st.warning("No answer was saved for this question.")
                st.button("Retry", key=f"retry-{message.id}", icon=":material/refresh:",
                          on_click=page_state.ask_again,
                          args=(history, state, conversation.id, None))
            return
        if message.content:
            st.markdown(safe_markdown(message.content))
        sources.show(message.sources)
        if message.status is AnswerStatus.STOPPED:
            st.caption(":material/stop_circle: Stopped: the answer above is partial.")
        if message.status is AnswerStatus.FAILED:
            st.error(safe_markdown(message.error or "The answer failed."))  # may quote a server
        if message.left_out:
            turns = "turn" if message.left_out == 1 else "turns"
            st.caption(f":material/warning: {message.left_out} earlier {turns} left out to fit "
                       "the model's context window.")
        text, action = st.columns([6, 1], vertical_alignment="center")
        text.caption(stats_line(message))
        if message.status is AnswerStatus.FAILED:
            action.button("Retry", key=f"retry-{message.id}", icon=":material/refresh:",
                          on_click=page_state.ask_again,
                          args=(history, state, conversation.id, message.id))
        elif is_last:
            action.button("", key=f"regenerate-{message.id}", icon=":material/refresh:",
                          type="tertiary", help="Regenerate this answer",
                          on_click=page_state.ask_again,
                          args=(history, state, conversation.id, message.id))


def answer(history: History, conversation: Conversation, info: StackInfo) -> None:
    """Stream the answer to the conversation's last question, then show the stored one."""
    setup = chat.Setup(model=info.model_name, context_size=info.context_size,
                       count=token_counter(info.model_path),
                       use_cache=bool(history.setting(CACHE_SETTING, True)),
                       use_documents=documents_panel.use_documents(conversation, info))
    with st.chat_message("assistant"):
        try:
            request = chat.prepare(history, conversation, setup)
        except ContextOverflowError as error:
            chat.record_failure(history, conversation, error, info.model_name)
            st.rerun()
        stream = chat.start_answer(client(info.megaservice_url), history, request)
        stored = page_state.begin_answer(st.session_state)
        slot = st.empty()
        st.button("Stop", key="stop", icon=":material/stop_circle:", shortcut=STOP_SHORTCUT)
        try:
            updates = stream.updates()
            with slot.container(), st.spinner("Waiting for the first token…"):
                first = next(updates, None)
            for text in chain([first] if first is not None else [], updates):
                slot.markdown(safe_markdown(text) + " ▌")
        finally:
            # Also reached when a click (Stop, or anything else) interrupts this run: the
            # HTTP stream is closed, which stops the model, and the partial answer is kept.
            try:
                chat.finish_answer(history, request, stream)
            finally:
                stored.set()
    st.rerun()


def page() -> None:
    state = st.session_state
    if state.get(STOPPED):
        stopped_page()
        return
    st.title(PRODUCT, anchor=False)
    info = stack_info()
    if notice := state.pop(NOTICE, None):
        st.success(notice)
    try:
        history = open_history(str(resolve_paths().data_dir / FILE_NAME))
    except HistoryError as error:
        history_problem(error)
        return
    page_state.wait_for_answer_in_progress(state)
    requested = st.query_params.get("c")
    conversation = page_state.current_conversation(
        history, state, int(requested) if requested and requested.isdigit() else None)
    st.query_params["c"] = str(conversation.id)
    messages = history.messages(conversation.id)
    speeds = [m.tokens_per_second for m in messages if m.tokens_per_second]
    sidebar(history, info, conversation, speeds[-1] if speeds else None)
    conversation_header(history, conversation, messages)
    documents_panel.switch(history, conversation, info)
    settings_panel(history, conversation, info)
    for index, message in enumerate(messages):
        show_message(history, conversation, message, is_last=index == len(messages) - 1)
    answer_area = st.container()
    st.caption(f"{PRODUCT} {__version__} · {info.megaservice_url}")

    question = st.chat_input("Ask anything (Enter sends, Shift+Enter for a new line)")
    if question is not None:
        if problem := chat.input_problem(question):
            st.warning(problem)
            if question.strip():
                with st.expander("Your message (not sent)"):
                    st.code(question, language=None, wrap_lines=True)
            return
        try:
            history.add_question(conversation.id, question, info.model_name,
                                 conversation.params)
        except HistoryError as error:
            history_problem(error, unsaved=question)
        state[ANSWER_FOR] = conversation.id
        st.rerun()
    if state.get(ANSWER_FOR) == conversation.id and messages and messages[-1].role == "user":
        state.pop(ANSWER_FOR)
        with answer_area:
            answer(history, conversation, info)
    state.pop(ANSWER_FOR, None)


st.set_page_config(page_title=PRODUCT, page_icon="💬")
try:
    page()
except HistoryError as problem:
    history_problem(problem)
