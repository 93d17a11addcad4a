"""The Documents panel (the rag profile): add files (several at once, with a progress bar
while each is parsed and embedded), the list of documents, remove one or all; and each
conversation's "Answer from my documents" switch.

The documents live in the dataprep service's index (``opea.dataprep_client``), not in the
app: the panel is only shown when the running session has a dataprep service.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import streamlit as st

from app.history import Conversation, History
from app.page_state import NOTICE, key
from app.render import safe_markdown
from app.stack_status import StackInfo
from launcher.sizes import human_size
from opea.dataprep_client import SUPPORTED_SUFFIXES, DataprepClient, Document
from opea.errors import OpeaChatError

UPLOAD_ROUND = "documents_round"  # a new key empties the uploader after an upload
UPLOAD_PROBLEMS = "documents_problems"
MAX_UPLOAD_MB = 50  # the dataprep service's default limit (rag/README.md)
POLL_SECONDS = 0.25


def dataprep_url(info: StackInfo) -> str | None:
    return info.urls.get("dataprep")


@st.cache_resource(show_spinner=False)
def dataprep(url: str) -> DataprepClient:
    return DataprepClient(url)


@st.cache_data(ttl=3, show_spinner=False)
def listed(url: str) -> list[Document]:
    return dataprep(url).documents()


def documents_or_none(url: str) -> list[Document] | None:
    """The documents, or None when the dataprep service does not answer."""
    try:
        return listed(url)
    except OpeaChatError:
        return None


def default_use_documents(conversation: Conversation, has_documents: bool) -> bool:
    """On by default once a document exists; the user's own choice always wins."""
    return conversation.use_documents if conversation.use_documents is not None \
        else has_documents


def use_documents(conversation: Conversation, info: StackInfo) -> bool | None:
    """What to ask the megaservice: None where the session has no documents service."""
    url = dataprep_url(info)
    if url is None:
        return None
    return default_use_documents(conversation, bool(documents_or_none(url)))


def switch(history: History, conversation: Conversation, info: StackInfo) -> None:
    """The per-conversation switch (rag profile only)."""
    value = use_documents(conversation, info)
    if value is None:
        return
    # The default follows whether documents exist (until the user flips the switch): a
    # widget per default, or Streamlit would keep showing the one it first drew.
    widget = key(f"use_documents-{conversation.use_documents}-{value}", conversation.id)
    st.toggle("Answer from my documents", key=widget, value=value,
              help="Answers quote passages of your documents, shown as sources under "
                   "each answer. Off: the model answers alone.",
              on_change=lambda: history.set_use_documents(conversation.id,
                                                          bool(st.session_state[widget])))


def _describe(document: Document) -> str:
    parts = [human_size(document.size_bytes) if document.size_bytes is not None else "?"]
    if document.chunks is not None:
        parts.append(f"{document.chunks} chunk{'s' * (document.chunks != 1)}")
    if document.added:
        parts.append("added " + document.added.replace("T", " ")[:16])
    if document.status == "incomplete":
        parts.append(":orange[incomplete: add it again or delete it]")
    return " · ".join(parts)


def _add(client: DataprepClient, uploads: list[Any]) -> list[str]:
    """Send each file in turn, with a progress bar that follows the chunks embedded;
    returns one line per file that was refused."""
    problems: list[str] = []
    bar = st.progress(0.0, text="Adding documents…")
    count = len(uploads)
    with ThreadPoolExecutor(max_workers=1) as pool:
        for index, upload in enumerate(uploads):
            name = upload.name
            running = pool.submit(client.add_bytes, name, upload.getvalue())
            while not running.done():
                fraction, stage = 0.0, "sending"
                try:
                    state = client.progress()
                    if state.active and state.total:
                        fraction, stage = state.done / state.total, state.stage or "working"
                except (OpeaChatError, httpx.HTTPError):
                    pass  # the bar just does not move
                bar.progress(min(1.0, (index + fraction) / count),
                             text=f"{safe_markdown(name)} ({index + 1} of {count}): {stage}…")
                time.sleep(POLL_SECONDS)
            try:
                running.result()
            except OpeaChatError as error:
                problems.append(f"{name}: {error.one_line()}")
    bar.progress(1.0, text="Done.")
    return problems


def panel(info: StackInfo) -> None:
    """The sidebar's Documents panel (rag profile only)."""
    url = dataprep_url(info)
    if url is None:
        return
    state = st.session_state
    with st.expander("Documents", icon=":material/folder_open:"):
        for problem in state.get(UPLOAD_PROBLEMS, []):
            st.error(safe_markdown(problem))
        uploads = st.file_uploader(
            "Add documents", type=[suffix.lstrip(".") for suffix in SUPPORTED_SUFFIXES],
            accept_multiple_files=True, key=f"documents-{state.get(UPLOAD_ROUND, 0)}",
            max_upload_size=MAX_UPLOAD_MB,
            help="PDF, DOCX, HTML, Markdown or text; a file with the name of one already "
                 "added replaces it.")
        if uploads:
            problems = _add(dataprep(url), list(uploads))
            state[UPLOAD_ROUND] = state.get(UPLOAD_ROUND, 0) + 1
            state[UPLOAD_PROBLEMS] = problems
            added = len(uploads) - len(problems)
            state[NOTICE] = f"Added {added} document{'s' * (added != 1)}."
            listed.clear()
            st.rerun()
        documents = documents_or_none(url)
        if documents is None:
            st.warning("The documents service does not answer; see `opea-chat logs dataprep`.")
            return
        if not documents:
            st.caption("No documents yet. Answers come from the model alone.")
            return
        for number, document in enumerate(documents):
            name_column, delete_column = st.columns([3, 2], vertical_alignment="center")
            name_column.markdown(f"**{safe_markdown(document.name)}**  \n"
                                 f"{_describe(document)}")
            if delete_column.button("Delete", key=f"delete-document-{number}",
                                    icon=":material/delete:", type="tertiary",
                                    help=f"Remove {document.name} from the index"):
                _remove(url, document.name)
        with st.popover("Delete all documents", icon=":material/delete_sweep:"):
            st.write(f"Remove all {len(documents)} documents from the index?")
            if st.button("Delete all", key="delete-all-documents", type="primary"):
                _remove(url, None)


def _remove(url: str, name: str | None) -> None:
    try:
        if name is None:
            dataprep(url).remove_all()
        else:
            dataprep(url).remove(name)
    except OpeaChatError as error:
        st.error(error.one_line())
        return
    listed.clear()
    st.session_state[NOTICE] = f"Deleted {name}." if name else "Deleted all documents."
    st.rerun()
