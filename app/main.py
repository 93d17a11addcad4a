"""The chat page: layout and widgets only.

The history store, the chat turn, trimming, rendering and the page's state live in plain
modules (``app.*``); long-lived objects come from ``st.cache_resource``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import streamlit as st

from app import chat, documents_panel, frame, page_state, session_actions, sources, titles
from app.cache import SETTING as CACHE_SETTING
from app.errors import ContextOverflowError, HistoryDiskError, HistoryError
from app.export import MAX_IMPORT_BYTES, parse_backup, to_json, to_markdown
from app.generation import Generation, Generations, silence_timeout
from app.history import FILE_NAME, AnswerStatus, Conversation, History, Message, set_aside
from app.page_state import ANSWER_FOR, EDIT_PROBLEM, EDITING, NOTICE, TOAST, UNDO, key
from app.prompts import all_templates
from app.render import safe_markdown, typed_markdown
from app.stack_status import LiveStatus, StackInfo, live_status, stack_info
from app.tokens import TokenCounter, estimate_tokens, gguf_counter
from launcher.paths import resolve_paths
from launcher.remote import app_client_options
from opea.client import OpeaClient
from opea.errors import OpeaChatError

PRODUCT = "opea-chat"
NEW_CONVERSATION_SHORTCUT = "Ctrl+Shift+O"
STOP_SHORTCUT = "Esc"
STOPPED = "stopped"
ANSWERS_SEEN = "answers_seen"  # the Generations this tab used (for Quit)
# Whether the tab is asking "Quit opea-chat?". Kept in the session, not taken from the
# button's one-run click: any other rerun (a late widget event, a busy machine) would
# otherwise close the question before it could be answered.
QUIT_ASKED = "quit_asked"
QUESTION = "question"  # the chat input's key: a question sent as the history fails is kept
FOLLOW_EVERY_S = 0.05
TITLE_CHECK_S = 1.0
CONVERSATION_LIST_PX = 360
LONG_QUESTION_CHARS = 600
LONG_QUESTION_LINES = 8
EXAMPLES = (
    "Explain how a rainbow forms, in three sentences.",
    "Write a haiku about the sea.",
    "Give me three ideas for a rainy weekend.",
    "What is the difference between a list and a tuple in Python?",
)


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


@st.cache_resource(show_spinner=False)
def answers(history_path: str, url: str) -> Generations:
    """The answers being written, shared by every tab of this app process."""
    return Generations(open_history(history_path), client(url), silence_timeout(),
                       write_titles=True)


@st.cache_data(ttl=5, show_spinner=False)
def status(info: StackInfo) -> LiveStatus:
    # Longer than the launcher's own probe of each service (2 s), so that a model that hangs
    # is reported by the launcher as unhealthy rather than the launcher as silent.
    return live_status(info, timeout=3.0)


def stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def history_problem(error: HistoryError, unsaved: str | None = None) -> None:
    """The history cannot be used: say why, and offer the way out (the file is kept)."""
    st.error(error.one_line())
    if unsaved:
        with st.expander("Your message (not saved)", expanded=True):
            st.code(unsaved, language=None, wrap_lines=True)
    if isinstance(error, HistoryDiskError):
        # The file is fine: a fresh history would only hide the conversations.
        st.button("Try again", key="retry_history", type="primary",
                  on_click=open_history.clear)
        st.stop()

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
            last_speed: float | None, generations: Generations) -> None:
    state = st.session_state
    with st.sidebar:
        st.button("New conversation", key="new", icon=":material/add:",
                  shortcut=NEW_CONVERSATION_SHORTCUT,
                  on_click=page_state.new_conversation, args=(history, state),
                  use_container_width=True)
        search = st.text_input(frame.SEARCH_LABEL, key="search",
                               placeholder=frame.SEARCH_LABEL, icon=":material/search:",
                               label_visibility="collapsed")
        results = history.search(search)
        matches = {r.conversation.id: r.message for r in results if r.message}
        found = page_state.listed([r.conversation for r in results])
        if search and not found:
            st.caption("No conversation contains that text.")
        # A scrolling list: a long history never pushes the sections below off screen.
        with st.container(height=CONVERSATION_LIST_PX if len(found) > 8 else "content",
                          border=False):
            for label, group in page_state.by_date(found, time.time()):
                st.caption(label)
                for item in group:
                    st.button(safe_markdown(item.title), key=f"open-{item.id}",
                              use_container_width=True,
                              type="secondary" if item.id == conversation.id else "tertiary",
                              on_click=page_state.select, args=(state, item.id))
                    if search and (text := matches.get(item.id)):
                        st.caption(safe_markdown(page_state.snippet(text, search)))
        if state.get(UNDO):
            st.info(f"Deleted “{safe_markdown(state[UNDO])}”.")
            st.button("Undo delete", key="undo", icon=":material/undo:",
                      on_click=page_state.undo_delete, args=(history, state))
        documents_panel.panel(info)
        with st.expander("Model", icon=":material/memory:"):
            model_panel(info, last_speed, generations)
        with st.expander("Settings", icon=":material/settings:"):
            st.toggle("Answer identical temperature-0 questions from the cache",
                      value=bool(history.setting(CACHE_SETTING, True)), key="cache_on",
                      on_change=lambda: history.set_setting(CACHE_SETTING,
                                                            bool(state["cache_on"])))
            st.toggle("Name conversations with a short title from the model",
                      value=bool(history.setting(titles.SETTING, True)), key="titles_on",
                      help="Asked after the first answer, in the background; the first "
                           "line of the question is the title until then",
                      on_change=lambda: history.set_setting(titles.SETTING,
                                                            bool(state["titles_on"])))
            defaults_panel(history, info)
            if st.button("Empty the answer cache", key="empty_cache"):
                st.toast(f"Removed {history.clear_answer_cache()} cached answers.")
            st.caption(f"Keys: Enter sends · Shift+Enter new line · "
                       f"{NEW_CONVERSATION_SHORTCUT} new conversation · "
                       f"{STOP_SHORTCUT} stops an answer. The theme (light or dark) follows "
                       "your system's.")
        with st.expander("Backup", icon=":material/archive:"):
            backup(history)


def defaults_panel(history: History, info: StackInfo) -> None:
    """What new conversations start with (each conversation's panel overrides it)."""
    state = st.session_state
    page_state.init_defaults(history, state)
    keys, save = page_state.DEFAULT_KEYS, (history, state)
    st.markdown("**New conversations start with**")
    st.text_area("Default system prompt", key=keys["system"], height=80,
                 on_change=page_state.save_defaults, args=save)
    st.slider("Default temperature", 0.0, 2.0, step=0.05, key=keys["temperature"],
              on_change=page_state.save_defaults, args=save)
    st.number_input("Default max tokens", 16, max(64, info.context_size // 2), step=64,
                    key=keys["max_tokens"], on_change=page_state.save_defaults, args=save)


def model_panel(info: StackInfo, last_speed: float | None, generations: Generations
                ) -> None:
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
    if silent_since := generations.last_not_responding:
        st.caption(f":red[:material/error:] the model is not responding: nothing came for "
                   f"{generations.silence_timeout:g} s (answer of {stamp(silent_since)}); "
                   "see `opea-chat logs llm`")
    st.metric("Last answer", f"{last_speed:.1f} tokens/s" if last_speed else "none yet")
    if session_actions.can_control(info):
        model_switch(info)
        st.button("Quit opea-chat", key="quit", icon=":material/power_settings_new:",
                  use_container_width=True, on_click=ask_quit, args=(True,))
        if st.session_state.get(QUIT_ASKED):
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


def ask_quit(asked: bool) -> None:
    st.session_state[QUIT_ASKED] = asked


def dismiss_quit() -> None:
    ask_quit(False)


@st.dialog("Quit opea-chat?", on_dismiss=dismiss_quit)
def confirm_quit(info: StackInfo) -> None:
    st.write("This stops every service opea-chat started (the model, the OPEA megaservice "
             "and this page). Your conversations are kept.")
    keep, quit_now = st.columns(2)
    # A button in a dialog reruns only the dialog: the page's rerun is what closes it.
    if keep.button("Keep running", key="quit_cancelled", use_container_width=True):
        ask_quit(False)
        st.rerun()
    if quit_now.button("Quit", key="quit_confirmed", type="primary",
                       use_container_width=True):
        for generations in st.session_state.get(ANSWERS_SEEN, ()):
            generations.stop_all()
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
    # Any name: a history file set aside (history.sqlite3.old-*) has no extension to match.
    upload = st.file_uploader("Import conversations (a JSON backup, or a history file set "
                              "aside as history.sqlite3.old-*)", key=uploader_key,
                              max_upload_size=MAX_IMPORT_BYTES // 1_000_000)
    if upload is not None:
        try:
            imported = parse_backup(upload.getvalue())
        except OpeaChatError as error:
            st.error(error.one_line())
            return
        added = [history.import_conversation(c, m) for c, m in imported]
        state["import_round"] = state.get("import_round", 0) + 1
        if added:
            page_state.select(state, added[0].id)
        state[NOTICE] = f"Imported {len(added)} conversation{'s' * (len(added) != 1)}."
        st.rerun()


def model_bar(info: StackInfo, generations: Generations) -> None:
    """The model answering, and whether it can: the first thing a user needs to know."""
    name = info.model_name or "unknown model"
    if generations.running():
        # A model busy writing can be slow to answer a health check: not a failure.
        st.caption(f":green[:material/check_circle:] **{safe_markdown(name)}** · answering")
        return
    live = status(info)
    unhealthy = [h.service for h in live.services if not h.healthy]
    if unhealthy:
        st.caption(f":red[:material/error:] **{safe_markdown(name)}** · not ready: "
                   f"{', '.join(unhealthy)} not healthy (see Model in the sidebar)")
    else:
        st.caption(f":green[:material/check_circle:] **{safe_markdown(name)}** · ready")


def welcome(history: History, conversation: Conversation, info: StackInfo) -> None:
    st.title("What can I help with?", anchor=False)
    st.caption("Ask anything below, or start with one of these:")
    columns = st.columns(2)
    for index, example in enumerate(EXAMPLES):
        columns[index % 2].button(
            example, key=f"example-{index}", use_container_width=True,
            on_click=page_state.ask, args=(history, st.session_state, conversation.id,
                                           example, info.model_name))


def conversation_header(history: History, conversation: Conversation,
                        messages: list[Message]) -> None:
    state = st.session_state
    title_column, menu_column = st.columns([5, 1], vertical_alignment="center")
    # Titles come from typed or imported text: rendered as safely as answers.
    title_column.title(safe_markdown(conversation.title), anchor=False)
    with menu_column.popover("Actions", icon=":material/more_horiz:",
                             help="Rename, export or delete this conversation"):
        state[key("title", conversation.id)] = conversation.title  # the current one
        st.text_input("Title", key=key("title", conversation.id), on_change=page_state.rename,
                      args=(history, state, conversation.id))
        st.button("Unpin conversation" if conversation.pinned else "Pin conversation",
                  key="pin", icon=":material/push_pin:",
                  help="Pinned conversations are listed first in the sidebar",
                  on_click=history.pin, args=(conversation.id, not conversation.pinned))
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
    # One panel per conversation, so switching conversation shows the other one closed.
    # Not a tracked open state (on_change): its reruns made the browser send back the
    # values the panel's widgets held before the defaults changed them.
    with st.expander("System prompt and parameters", icon=":material/tune:",
                     key=f"settings-{conversation.id}"):
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
        # A callback, so the template list drawn above already holds it after the click.
        save_column.button("Save", key="save_template", disabled=not name.strip(),
                           on_click=page_state.save_template,
                           args=(history, state, keys["system"]))
        temperature, top_p, max_tokens = st.columns(3)
        temperature.slider("Temperature", 0.0, 2.0, step=0.05, key=keys["temperature"],
                           on_change=save, args=save_args)
        top_p.slider("Top-p", 0.05, 1.0, step=0.05, key=keys["top_p"], on_change=save,
                     args=save_args)
        max_tokens.number_input("Max tokens", 16, max(64, info.context_size // 2), step=64,
                                key=keys["max_tokens"], on_change=save, args=save_args)


def show_question(text: str) -> None:
    """A question; a long one collapsed to its start, the whole of it one click away."""
    shown = typed_markdown(text)
    if len(text) <= LONG_QUESTION_CHARS and text.count("\n") < LONG_QUESTION_LINES:
        st.markdown(shown)
        return
    start = "\n".join(text[:LONG_QUESTION_CHARS].splitlines()[:LONG_QUESTION_LINES])
    st.markdown(typed_markdown(start.rstrip() + " …"))
    with st.expander(f"Show the whole question ({len(text):,} characters)"):
        st.markdown(shown)


def show_message(history: History, conversation: Conversation, message: Message,
                 is_last: bool, answering: bool) -> None:
    state = st.session_state
    with st.chat_message(message.role):
        if message.role == "user":
            if state.get(EDITING) == message.id:
                edit_question(history, conversation, message)
                return
            show_question(message.content)
            text, edit = st.columns([4, 1], vertical_alignment="center")
            text.caption(stamp(message.created_at))
            if is_last and answering:
                return  # no edit while its answer is being written
            edit.button("Edit question", key=f"edit-button-{message.id}",
                        icon=":material/edit:", type="tertiary",
                        help="Edit and resend (replaces what came after)",
                        on_click=page_state.start_edit, args=(state, message.id,
                                                              message.content))
            if is_last:
                st.warning("No answer was saved for this question.")
                st.button("Retry", key=f"retry-{message.id}", icon=":material/refresh:",
                          on_click=page_state.ask_again,
                          args=(history, state, conversation.id, None))
            return
        if message.content:
            st.markdown(safe_markdown(message.content))
        sources.show(message.sources)
        if message.status is AnswerStatus.STOPPED:
            st.caption(":material/stop_circle: Stopped: the answer above is partial."
                       if message.content else
                       ":material/stop_circle: Stopped before the model wrote anything.")
        if message.status is AnswerStatus.FAILED:
            st.error(safe_markdown(message.error or "The answer failed."))  # may quote a server
        if message.left_out:
            turns = "turn" if message.left_out == 1 else "turns"
            st.caption(f":material/warning: {message.left_out} earlier {turns} left out to fit "
                       "the model's context window.")
        st.caption(stats_line(message))
        versions = history.versions(message)
        # One row: copy, regenerate (or retry), and the versions when there are several.
        with st.container(horizontal=True, vertical_alignment="center", gap="medium"):
            if message.content:
                st.html(frame.copy_button(message.content), width="content")
            if message.status is AnswerStatus.FAILED:
                st.button("Retry", key=f"retry-{message.id}", icon=":material/refresh:",
                          on_click=page_state.ask_again,
                          args=(history, state, conversation.id, message.id))
            elif is_last:
                st.button("Regenerate", key=f"regenerate-{message.id}",
                          icon=":material/refresh:", type="tertiary",
                          help="Write this answer again (this one is kept as a version)",
                          on_click=page_state.regenerate,
                          args=(history, state, conversation.id, message.id))
            if len(versions) > 1:
                previous, number, following = page_state.version_of(versions, message.id)
                st.button("Previous version", key=f"previous-{message.id}",
                          icon=":material/chevron_left:", type="tertiary",
                          disabled=previous is None or answering,
                          on_click=history.show_version, args=(previous,))
                st.caption(f"{number}/{len(versions)}", width="content")
                st.button("Next version", key=f"next-{message.id}",
                          icon=":material/chevron_right:", type="tertiary",
                          disabled=following is None or answering,
                          on_click=history.show_version, args=(following,))


def edit_question(history: History, conversation: Conversation, message: Message) -> None:
    """A question being edited: a form, so that Enter sends what is in the box (the page's
    script maps Enter to Send and Esc to Cancel, and focuses the box)."""
    state = st.session_state
    with st.form(key=f"edit-form-{message.id}", border=False):
        st.text_area(frame.EDIT_LABEL, key=key("edit", message.id))
        st.caption("Enter sends · Shift+Enter new line · Esc cancels")
        if state.get(EDIT_PROBLEM):
            st.warning(state[EDIT_PROBLEM])
        send, cancel, _ = st.columns([1, 1, 4])
        send.form_submit_button("Send", key=f"send-edit-{message.id}", type="primary",
                                on_click=page_state.send_edit,
                                args=(history, state, conversation.id, message.id))
        cancel.form_submit_button("Cancel", key=f"cancel-edit-{message.id}",
                                  on_click=page_state.cancel_edit, args=(state,))


def start_answer(history: History, conversation: Conversation, info: StackInfo,
                 generations: Generations) -> Generation | None:
    """Ask for the answer to the conversation's last question (None: it is stored)."""
    setup = chat.Setup(model=info.model_name, context_size=info.context_size,
                       count=token_counter(info.model_path),
                       use_cache=bool(history.setting(CACHE_SETTING, True)),
                       use_documents=documents_panel.use_documents(conversation, info))
    try:
        request = chat.prepare(history, conversation, setup)
    except ContextOverflowError as error:
        chat.record_failure(history, conversation, error, info.model_name)
        return None
    return generations.start(request)


def not_stored(generation: Generation) -> None:
    """An answer written but refused by the history (a full disk): say so, and show it."""
    assert generation.not_stored is not None
    st.error(f"The answer could not be saved: {generation.not_stored.one_line()}")
    if generation.text:
        with st.expander("The answer (not saved)", expanded=True):
            st.markdown(safe_markdown(generation.text))


def follow(generation: Generation, generations: Generations) -> None:
    """Show the answer as the app process writes it, until it is stored.

    Only this tab's view ends when the user does something else (Streamlit stops this run
    at its next update); the answer itself goes on, and the next run that shows this
    conversation follows it again.
    """
    with st.chat_message("assistant"):
        slot = st.empty()
        st.button("Stop", key="stop", icon=":material/stop_circle:", shortcut=STOP_SHORTCUT,
                  on_click=generation.stop)
        shown = ""
        while not generation.done.wait(FOLLOW_EVERY_S):
            if generation.waiting:
                # Updated each second: an update is also where a click ends this run.
                waited = f"{generation.seconds_waiting():.0f}"
                if waited != shown:
                    slot.caption(f":material/hourglass_top: Waiting for the first token "
                                 f"({waited} s)")
                    shown = waited
            elif (text := generation.text) != shown:
                slot.markdown(safe_markdown(text) + " ▌")
                shown = text
        if generations.take_not_stored(generation.conversation_id) is generation:
            slot.empty()
            not_stored(generation)  # a rerun would read the history, which fails
            return
        # The last tokens go on screen now: the page's next run, which shows the stored
        # answer, takes a moment on a busy machine.
        slot.markdown(safe_markdown(generation.text))
    st.rerun()


@st.fragment(run_every=TITLE_CHECK_S)
def title_watch(generations: Generations, conversation_id: int) -> None:
    """While the model writes the conversation's title: show it once it is there."""
    if not generations.title_pending(conversation_id):
        st.rerun()


def page() -> None:
    state = st.session_state
    st.html(frame.STYLE)
    st.html(frame.WATCH_SCRIPT, unsafe_allow_javascript=True)
    if state.get(STOPPED):
        stopped_page()
        return
    info = stack_info()
    if notice := state.pop(NOTICE, None):
        st.success(notice)
    if toast := state.pop(TOAST, None):
        st.toast(safe_markdown(toast))
    try:
        history = open_history(str(resolve_paths().data_dir / FILE_NAME))
    except HistoryError as error:
        history_problem(error)
        return
    requested = st.query_params.get("c")
    conversation = page_state.current_conversation(
        history, state, int(requested) if requested and requested.isdigit() else None)
    st.query_params["c"] = str(conversation.id)
    generations = answers(str(history.path), info.megaservice_url)
    state[ANSWERS_SEEN] = (generations,)
    # Looked up before the messages are read: an answer leaves the registry only once it
    # is stored, so it is either followed here or found among the messages.
    generation = generations.get(conversation.id)
    if (lost := generations.take_not_stored(conversation.id)) is not None:
        not_stored(lost)
    messages = history.messages(conversation.id)
    speeds = [m.tokens_per_second for m in messages if m.tokens_per_second]
    sidebar(history, info, conversation, speeds[-1] if speeds else None, generations)
    model_bar(info, generations)
    if messages:
        conversation_header(history, conversation, messages)
    else:
        welcome(history, conversation, info)
    # Above the first question too: whether it is answered from the documents is chosen
    # before it is asked.
    documents_panel.switch(history, conversation, info)
    settings_panel(history, conversation, info)
    waiting = messages and messages[-1].role == "user" and (
        generation is not None or state.get(ANSWER_FOR) == conversation.id)
    for index, message in enumerate(messages):
        show_message(history, conversation, message, is_last=index == len(messages) - 1,
                     answering=bool(waiting))
    answer_area = st.container()

    question = st.chat_input("Ask anything (Enter sends, Shift+Enter for a new line)",
                             key=QUESTION)
    if question is not None:
        if problem := chat.input_problem(question):
            st.warning(problem)
            if question.strip():
                with st.expander("Your message (not sent)"):
                    st.code(question, language=None, wrap_lines=True)
            return
        if generation is not None:
            st.warning("Wait for the answer to end, or stop it, before asking again.")
            return
        try:
            history.add_question(conversation.id, question, info.model_name,
                                 conversation.params)
        except HistoryError as error:
            history_problem(error, unsaved=question)
        state[ANSWER_FOR] = conversation.id
    if state.pop(ANSWER_FOR, None) == conversation.id and generation is None:
        current = history.conversation(conversation.id)
        if current is not None and (stored := history.messages(conversation.id)) \
                and stored[-1].role == "user":
            start_answer(history, current, info, generations)
        st.rerun()
    if generation is not None:
        with answer_area:
            follow(generation, generations)
    elif generations.title_pending(conversation.id):
        title_watch(generations, conversation.id)


st.set_page_config(page_title=PRODUCT, page_icon="💬")
try:
    page()
except HistoryError as problem:
    # The history failed before the question could be stored (reading fails too on a full
    # disk): show the question back rather than lose it.
    history_problem(problem, unsaved=st.session_state.get(QUESTION))
