"""The chat page. Layout and widgets only: state and I/O live in app.conversation and
opea.client."""

from __future__ import annotations

import os

import streamlit as st

from app.conversation import Conversation, input_problem
from launcher.errors import OpeaChatError
from opea.client import OpeaClient

MEGASERVICE_URL = os.environ.get("OPEA_CHAT_MEGASERVICE_URL", "http://127.0.0.1:8888")


@st.cache_resource
def client(url: str) -> OpeaClient:
    return OpeaClient(url)


st.set_page_config(page_title="opea-chat", page_icon="💬")
st.title("opea-chat")
st.caption(f"Local model through OPEA ChatQnA at {MEGASERVICE_URL}")

conversation: Conversation = st.session_state.setdefault("conversation", Conversation())

for turn in conversation.turns:
    with st.chat_message(turn.role):
        st.markdown(turn.content)
        if turn.error:
            st.error(turn.error)

if question := st.chat_input("Ask anything"):
    if problem := input_problem(question):
        st.warning(problem)
    else:
        conversation.add_question(question)
        with st.chat_message("user"):
            st.markdown(question)
        with st.chat_message("assistant"):
            try:
                answer = st.write_stream(client(MEGASERVICE_URL).chat_stream(
                    conversation.messages()))
                conversation.add_answer(answer if isinstance(answer, str) else "".join(answer))
            except OpeaChatError as error:
                conversation.mark_failed(error.one_line())
                st.error(error.one_line())
