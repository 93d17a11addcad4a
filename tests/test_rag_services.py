"""The RAG services as the megaservice and the app use them: real processes, the real
embedding model, requests over HTTP on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from launcher.ports import pick_free_port
from tests.rag_services import (
    dataprep_command,
    dataprep_service,
    embedding_command,
    embedding_service,
    retriever_command,
    retriever_service,
)
from tests.sample_documents import docx, encrypted_pdf, image_only_pdf, text_pdf

pytestmark = pytest.mark.integration

FERRY = text_pdf([
    ["Harbour guide", "Welcome to the island of Vellmar."],
    ["Ferries", "The night ferry to Vellmar leaves at 23:40 from pier 9.",
     "Tickets cost 14 euros."],
    ["Food", "The bakery on the quay sells rye bread with caraway."],
])
LIMIT_MB = 1


@dataclass(frozen=True)
class Rag:
    embedding: str
    dataprep: str
    retriever: str
    data_dir: Path

    def ingest(self, *files: tuple[str, bytes], **form: str) -> httpx.Response:
        return httpx.post(f"{self.dataprep}/v1/dataprep/ingest",
                          files=[("files", (name, data)) for name, data in files],
                          data=form, timeout=120)

    def listed(self) -> list[dict[str, Any]]:
        response = httpx.post(f"{self.dataprep}/v1/dataprep/get", timeout=10)
        assert response.status_code == 200
        return response.json()  # type: ignore[no-any-return]

    def ask(self, question: str, k: int = 4, **extra: Any) -> list[dict[str, Any]]:
        vector = httpx.post(f"{self.embedding}/embed", json={"inputs": question}).json()[0]
        response = httpx.post(f"{self.retriever}/v1/retrieval", timeout=30,
                              json={"text": question, "embedding": vector, "k": k, **extra})
        assert response.status_code == 200, response.text
        return response.json()["retrieved_docs"]  # type: ignore[no-any-return]

    def clear(self) -> None:
        assert httpx.post(f"{self.dataprep}/v1/dataprep/delete",
                          json={"file_path": "all"}).json() == {"status": True}


@pytest.fixture(scope="module")
def rag(minilm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rag]:
    root = tmp_path_factory.mktemp("rag")
    data_dir, logs = root / "data" / "rag", root / "logs"
    with embedding_service(minilm, logs) as embedding, \
            dataprep_service(data_dir, embedding, logs, max_file_mb=LIMIT_MB) as (dataprep, _), \
            retriever_service(data_dir, embedding, logs) as retriever:
        yield Rag(embedding, dataprep, retriever, data_dir)


@pytest.fixture
def empty_rag(rag: Rag) -> Rag:
    rag.clear()
    return rag


def test_a_pdf_is_answered_from_with_its_file_page_and_score(empty_rag: Rag) -> None:
    rag = empty_rag
    response = rag.ingest(("harbour.pdf", FERRY))
    assert response.status_code == 200, response.text
    assert response.json()["files"] == [
        {"name": "harbour.pdf", "chunks": 3, "bytes": len(FERRY), "replaced": False}]
    best = rag.ask("When does the night ferry leave?")[0]
    assert "23:40 from pier 9" in best["text"]
    assert best["metadata"]["source"] == "harbour.pdf"
    assert best["metadata"]["page"] == 2
    assert 0.3 < best["metadata"]["score"] <= 1.0
    (listed,) = rag.listed()
    assert {k: listed[k] for k in ("name", "chunks", "bytes", "status", "type")} == {
        "name": "harbour.pdf", "chunks": 3, "bytes": len(FERRY), "status": "complete",
        "type": "File"}
    # The index is private to the user.
    assert stat.S_IMODE(rag.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((rag.data_dir / "index.sqlite3").stat().st_mode) == 0o600


def test_every_supported_type_in_one_request_and_headings_kept(empty_rag: Rag) -> None:
    rag = empty_rag
    html = (b"<html><body><h1>Garden</h1><p>Tomatoes need sun.</p><h2>Pests</h2>"
            b"<p>Aphids are washed off with soapy water.</p></body></html>")
    response = rag.ingest(("notes.docx", docx(["The boiler is serviced every March."])),
                          ("garden.html", html),
                          ("cat.md", b"# Cat\nThe cat is called Miso.\n"),
                          ("todo.txt", b"Buy lightbulbs for the hallway."))
    assert response.status_code == 200, response.text
    assert sorted(f["name"] for f in rag.listed()) == [
        "cat.md", "garden.html", "notes.docx", "todo.txt"]
    aphids = rag.ask("how to get rid of aphids", k=1)[0]
    assert aphids["metadata"]["source"] == "garden.html"
    assert aphids["metadata"]["heading"] == "Pests"
    assert rag.ask("when is the boiler serviced", k=1)[0]["metadata"]["source"] == "notes.docx"
    assert rag.ask("what is the cat's name", k=1)[0]["metadata"]["heading"] == "Cat"


@pytest.mark.parametrize(("name", "data", "status", "says"), [
    ("broken.pdf", FERRY[: len(FERRY) // 3], 400,
     "broken.pdf is not a readable PDF (damaged or not a PDF); open it in a PDF viewer"),
    ("locked.pdf", encrypted_pdf([["top secret"]]), 400,
     "locked.pdf is encrypted (password-protected): cannot read its text; save a copy "
     "without the password and add that"),
    ("scan.pdf", image_only_pdf(), 400,
     "scan.pdf has no text: nothing to index; it has no text layer (a scan?): run OCR"),
    ("empty.txt", b"", 400, "empty.txt is empty: nothing to index"),
    ("song.mp3", b"ID3\x03\x00", 415, "song.mp3: cannot index .mp3; add a PDF, DOCX, HTML"),
    ("huge.txt", b"word " * (LIMIT_MB * 1024 * 1024 // 5 + 10), 413,
     "huge.txt is 1.0 MB; the limit is 1 MB; split it into smaller files"),
])
def test_a_bad_file_is_refused_in_one_line_and_nothing_is_indexed(
        empty_rag: Rag, name: str, data: bytes, status: int, says: str) -> None:
    response = empty_rag.ingest((name, data))
    assert response.status_code == status
    detail = response.json()["detail"]
    assert detail.startswith(says)
    assert "\n" not in detail and "Traceback" not in detail
    assert empty_rag.listed() == []


def test_good_files_beside_a_bad_one_are_still_indexed(empty_rag: Rag) -> None:
    response = empty_rag.ingest(("good.txt", b"Plums ripen in August."),
                                ("bad.pdf", b"not a pdf"))
    assert response.status_code == 400
    assert response.json()["detail"].startswith("bad.pdf is not a readable PDF")
    assert [f["name"] for f in response.json()["files"]] == ["good.txt"]
    assert [f["name"] for f in empty_rag.listed()] == ["good.txt"]


def test_the_same_file_twice_is_replaced_not_duplicated(empty_rag: Rag) -> None:
    rag = empty_rag
    assert rag.ingest(("plan.txt", b"The meeting is on Monday in room A."))\
        .json()["files"][0]["replaced"] is False
    again = rag.ingest(("plan.txt", b"The meeting moved to Thursday in room B."))
    assert again.json()["files"][0]["replaced"] is True
    assert [(f["name"], f["chunks"]) for f in rag.listed()] == [("plan.txt", 1)]
    texts = [d["text"] for d in rag.ask("when is the meeting", k=4)]
    assert texts == ["The meeting moved to Thursday in room B."]


@pytest.mark.parametrize(("sent", "stored"), [
    ("../../escape.txt", "escape.txt"),
    ("..\\..\\win.txt", "win.txt"),
    ("R\u00e9sum\u00e9 (v2) #1 \u2013 final!.md", "R\u00e9sum\u00e9 (v2) #1 \u2013 final!.md"),
])
def test_names_with_path_parts_or_odd_characters(empty_rag: Rag, sent: str,
                                                 stored: str) -> None:
    rag = empty_rag
    response = rag.ingest((sent, b"Odd names are fine."))
    assert response.status_code == 200, response.text
    assert [f["name"] for f in rag.listed()] == [stored]
    assert rag.ask("odd names", k=1)[0]["metadata"]["source"] == stored
    # Nothing was written outside the data folder, under any name.
    assert not (rag.data_dir.parent / stored).exists()
    assert not (rag.data_dir.parent.parent / stored).exists()
    assert httpx.post(f"{rag.dataprep}/v1/dataprep/delete",
                      json={"file_path": sent}).json() == {"status": True}
    assert rag.listed() == []


def test_delete_one_all_and_unknown(empty_rag: Rag) -> None:
    rag = empty_rag
    rag.ingest(("a.txt", b"Apples are red."), ("b.txt", b"Bananas are yellow."))
    delete = f"{rag.dataprep}/v1/dataprep/delete"
    assert httpx.post(delete, json={"file_path": "a.txt"}).json() == {"status": True}
    assert {d["metadata"]["source"] for d in rag.ask("fruit colours")} == {"b.txt"}
    missing = httpx.post(delete, json={"file_path": "nope.txt"})
    assert missing.status_code == 404
    assert missing.json()["detail"] == ("no document named nope.txt in the index; list them "
                                        "with POST /v1/dataprep/get")
    assert httpx.post(delete, json={}).status_code == 400
    assert httpx.post(delete, json={"file_path": "all"}).json() == {"status": True}
    assert rag.ask("fruit colours") == []


def test_retrieval_requests_in_opea_and_chatqna_shapes(empty_rag: Rag) -> None:
    rag = empty_rag
    rag.ingest(("harbour.pdf", FERRY))
    url = f"{rag.retriever}/v1/retrieval"
    # Text only: the retriever embeds it through the embedding service.
    answer = httpx.post(url, json={"text": "price of a ticket", "k": 1}, timeout=30).json()
    assert "14 euros" in answer["retrieved_docs"][0]["text"]
    assert answer["initial_query"] == "price of a ticket"
    vector = httpx.post(f"{rag.embedding}/embed", json={"inputs": ["bread"]}).json()
    # ChatQnA's embedding node output as is (a list of vectors), and OpenAI's `input`.
    shaped = httpx.post(url, json={"input": "bread", "embedding": vector, "k": 2,
                                   "search_type": "similarity_score_threshold",
                                   "score_threshold": 0.3}).json()
    assert [d["metadata"]["page"] for d in shaped["retrieved_docs"]] == [3]
    mmr = httpx.post(url, json={"text": "x", "embedding": vector[0], "k": 2,
                                "search_type": "mmr", "fetch_k": 3}).json()
    assert len(mmr["retrieved_docs"]) == 2
    bad = httpx.post(url, json={"text": "x", "embedding": vector[0], "search_type": "fuzzy"})
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("search_type 'fuzzy' is not supported; use one of")
    wrong = httpx.post(url, json={"text": "x", "embedding": [0.1, 0.2]})
    assert wrong.status_code == 400
    assert "the embedding has 2 numbers; this index holds 384" in wrong.json()["detail"]


def test_embedding_apis(rag: Rag) -> None:
    tei = httpx.post(f"{rag.embedding}/embed",
                     json={"inputs": ["a cat on a mat", "a kitten on a rug", "tax law"]})
    vectors = tei.json()
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)

    def dot(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert abs(dot(vectors[0], vectors[0]) - 1) < 1e-3
    assert dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2]) + 0.2
    openai = httpx.post(f"{rag.embedding}/v1/embeddings",
                        json={"input": "a cat on a mat", "model": "x"}).json()
    assert openai["object"] == "list" and openai["model"] == "all-minilm-l6-v2"
    assert openai["data"][0]["index"] == 0
    assert abs(dot(openai["data"][0]["embedding"], vectors[0]) - 1) < 1e-4
    assert openai["usage"]["prompt_tokens"] > 0
    empty = httpx.post(f"{rag.embedding}/embed", json={"inputs": []})
    assert empty.status_code == 400
    assert empty.json()["detail"].startswith("nothing to embed")


@pytest.mark.parametrize("service", ["embedding", "dataprep", "retriever"])
def test_a_foreign_host_or_origin_is_refused(rag: Rag, service: str) -> None:
    url = getattr(rag, service)
    port = url.rsplit(":", 1)[1]
    health = "/health"
    assert httpx.get(url + health).status_code == 200
    assert httpx.get(url + health, headers={"Host": f"localhost:{port}"}).status_code == 200
    for headers in ({"Host": f"evil.example:{port}"},
                    {"Origin": f"http://evil.example:{port}"},
                    {"Host": f"127.0.0.1.evil.example:{port}"}):
        refused = httpx.get(url + health, headers=headers)
        assert refused.status_code == 403
        assert "only requests addressed to 127.0.0.1" in refused.json()["detail"]
    # A rebinding page cannot add documents either.
    post = httpx.post(f"{rag.dataprep}/v1/dataprep/get",
                      headers={"Host": f"evil.example:{port}"})
    assert post.status_code == 403


def test_a_dataprep_killed_mid_ingest_leaves_a_usable_index(
        minilm: Path, tmp_path: Path) -> None:
    data_dir, logs = tmp_path / "rag", tmp_path / "logs"
    long_text = "\n\n".join(f"Paragraph {i}: the lighthouse keeper logs ship number {i} "
                            "passing the northern reef at dawn." for i in range(600))
    with embedding_service(minilm, logs) as embedding:
        with dataprep_service(data_dir, embedding, logs) as (dataprep, child):
            ingest = f"{dataprep}/v1/dataprep/ingest"
            assert httpx.post(ingest, files=[("files", ("kept.txt", b"The reef is safe."))])\
                .status_code == 200

            def send() -> None:
                with contextlib.suppress(httpx.HTTPError):  # the server is killed under it
                    httpx.post(ingest, files=[("files", ("log.txt", long_text.encode()))],
                               data={"chunk_size": "200", "chunk_overlap": "0"}, timeout=120)

            sender = threading.Thread(target=send)
            sender.start()
            deadline = time.monotonic() + 60
            while True:
                progress = httpx.get(f"{dataprep}/v1/dataprep/progress").json()
                if progress["stage"] == "embedding" and progress["done"] > 0:
                    break
                assert time.monotonic() < deadline, progress
                time.sleep(0.05)
            assert progress["file"] == "log.txt" and progress["total"] > progress["done"]
            os.killpg(child.pid, signal.SIGKILL)
            sender.join(timeout=30)
        with dataprep_service(data_dir, embedding, logs) as (dataprep, _), \
                retriever_service(data_dir, embedding, logs) as retriever:
            listed = {f["name"]: (f["status"], f["chunks"])
                      for f in httpx.post(f"{dataprep}/v1/dataprep/get").json()}
            assert listed == {"kept.txt": ("complete", 1), "log.txt": ("incomplete", 0)}
            found = httpx.post(f"{retriever}/v1/retrieval",
                               json={"text": "lighthouse ship reef", "k": 10}).json()
            assert [d["metadata"]["source"] for d in found["retrieved_docs"]] == ["kept.txt"]
            # Adding it again replaces the incomplete entry.
            again = httpx.post(f"{dataprep}/v1/dataprep/ingest", timeout=300,
                               files=[("files", ("log.txt", b"Ship 1 passed the reef."))])
            assert again.json()["files"][0]["replaced"] is True
            statuses = {f["name"]: f["status"]
                        for f in httpx.post(f"{dataprep}/v1/dataprep/get").json()}
            assert statuses == {"kept.txt": "complete", "log.txt": "complete"}


def _start_error(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_start_errors_are_one_line(tmp_path: Path, minilm: Path) -> None:
    missing = _start_error(embedding_command(pick_free_port(), tmp_path / "no-model"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1] == (
        f"Error: the embedding model folder {tmp_path / 'no-model'} has no model.onnx; "
        "run `opea-chat models pull all-minilm-l6-v2`")
    assert "Traceback" not in missing.stderr
    with embedding_service(minilm, tmp_path) as embedding:
        port = int(embedding.rsplit(":", 1)[1])
        taken = _start_error(dataprep_command(port, tmp_path / "rag", embedding))
        assert taken.returncode == 2
        assert taken.stderr.strip().splitlines()[-1].startswith(
            f"Error: cannot listen on 127.0.0.1:{port} (Address already in use); "
            "choose another --port")
    assert not (tmp_path / "rag").exists()
    # A data folder that cannot be made (a file is in its way).
    (tmp_path / "file").write_text("in the way")
    blocked = _start_error(retriever_command(pick_free_port(), tmp_path / "file" / "rag", None))
    assert blocked.returncode == 2
    assert blocked.stderr.strip().splitlines()[-1].startswith(
        f"Error: cannot open the index in {tmp_path / 'file' / 'rag'} (")
    assert blocked.stderr.strip().endswith("; check that the folder is writable")
    assert "Traceback" not in blocked.stderr
