"""Under each RAG answer: the document passages it was given, each one expandable."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from app.render import safe_markdown
from opea.sources import Source


def label(number: int, source: Source) -> str:
    """``[1] report.pdf, page 3 · score 0.71`` (document names are shown as text)."""
    score = f" · score {source.score:.2f}" if source.score is not None else ""
    return f"[{number}] {source.where()}{score}"


def show(sources: Sequence[Source]) -> None:
    if not sources:
        return
    st.caption(":material/menu_book: Sources")
    for number, source in enumerate(sources, start=1):
        # Document text is not the user's Markdown: shown as safely as an answer.
        with st.expander(safe_markdown(label(number, source)), icon=":material/description:"):
            st.markdown(safe_markdown(source.passage))
