"""The megaservice's rag graph when a node fails: each failure is an HTTP status with a
sentence naming the node, never a bare 500; a bad switch value is a 400. Real services:
the megaservice started by the stack's own command, the real embedding server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from launcher.ports import pick_free_port
from opea.stack import CHATQNA_PATH, LOCAL_RAG_MEGASERVICE
from tests.rag_services import embedding_service
from tests.services import running, service_command

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedding(minilm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with embedding_service(minilm, tmp_path_factory.mktemp("embedding-logs")) as url:
        yield url


@contextmanager
def rag_megaservice(embedding_url: str | None, retriever_url: str, log_dir: Path
                    ) -> Iterator[str]:
    """``embedding_url=None``: the megaservice's own address (it has no /embed)."""
    port = pick_free_port()
    url = f"http://127.0.0.1:{port}"
    command = service_command(LOCAL_RAG_MEGASERVICE, port,
                              llm_url=f"http://127.0.0.1:{pick_free_port()}",
                              embedding_url=embedding_url or url, retriever_url=retriever_url)
    with running("megaservice", command, url + LOCAL_RAG_MEGASERVICE.health.path, log_dir):
        yield url


def ask(url: str, **body: object) -> httpx.Response:
    return httpx.post(url + CHATQNA_PATH, json={"messages": "What is the code?",
                                                 "stream": False, **body}, timeout=30)


def test_an_unreachable_retriever_is_a_502_naming_the_cause(embedding: str,
                                                            tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{pick_free_port()}"
    with rag_megaservice(embedding, dead, tmp_path) as url:
        answer = ask(url)
        assert answer.status_code == 502
        assert answer.json()["detail"] == f"cannot reach the retriever server at {dead}"
        # The switch is a boolean; anything else says so.
        refused = ask(url, use_documents="yes")
        assert refused.status_code == 400
        assert refused.json()["detail"] == "use_documents must be true or false"


def test_an_embedding_service_answering_an_error_is_a_502_saying_so(embedding: str,
                                                                    tmp_path: Path) -> None:
    # The embedding node points at a server without TEI's /embed: it answers a JSON 404.
    with rag_megaservice(None, embedding, tmp_path) as url:
        answer = ask(url)
    assert answer.status_code == 502
    assert answer.json()["detail"].startswith("the embedding service answered with an error")
