"""The local rag profile, launched for real: `opea-chat launch --profile rag` with the real
embedding model, dataprep, retriever, SmolLM2 and OPEA's megaservice; a document's fact is
answered with that document as the source, through the client and through the CLI
(`docs add`, `chat`), while ingests and deletes happen beside answers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opea.client import ChatParams, OpeaClient
from opea.dataprep_client import DataprepClient
from opea.sources import Source
from tests.launched import Launched
from tests.sample_documents import text_pdf

pytestmark = pytest.mark.integration

FACT = "The launch code of Project Bluebird is 4417."
QUESTION = "What is the launch code of Project Bluebird?"
OTHER = ("Tomato plants need six hours of sun a day. Water them at the base in the morning, "
         "and stake them once they are a foot tall.")
EXACT = ChatParams(max_tokens=48, temperature=0.0)


class RagSession:
    def __init__(self, launched: Launched, home: Path, files: Path):
        self.launched = launched
        self.home = home
        self.files = files
        record = launched.session()
        self.urls: dict[str, str] = record["urls"]

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "OPEA_CHAT_HOME": str(self.home)}
        return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True,
                              text=True, env=env, timeout=timeout, check=False)

    def client(self) -> OpeaClient:
        return OpeaClient(self.urls["megaservice"])

    def dataprep(self) -> DataprepClient:
        return DataprepClient(self.urls["dataprep"])


@pytest.fixture(scope="module")
def rag(tmp_path_factory: pytest.TempPathFactory, smollm2: Path, minilm: Path
        ) -> Iterator[RagSession]:
    home = tmp_path_factory.mktemp("rag-home")
    models = home / "models"
    models.mkdir()
    (models / smollm2.name).symlink_to(smollm2)
    (models / minilm.name).symlink_to(minilm, target_is_directory=True)
    files = tmp_path_factory.mktemp("rag-files")
    (files / "bluebird.pdf").write_bytes(text_pdf([[FACT]]))
    (files / "garden.txt").write_text(OTHER, encoding="utf-8")
    launched = Launched(["--profile", "rag", "--runtime", "local", "--no-browser",
                         "--idle-timeout", "0", "--context-size", "2048"], home)
    try:
        launched.expect(r"^Ready: http://127\.0\.0\.1:\d+$", timeout=300)
        yield RagSession(launched, home, files)
    finally:
        launched.cleanup()


def clear(rag: RagSession) -> None:
    with rag.dataprep() as dataprep:
        dataprep.remove_all()


def test_the_launch_starts_prints_and_reports_the_rag_services(rag: RagSession) -> None:
    for name in ("embedding", "dataprep", "retriever", "megaservice", "app"):
        rag.launched.expect(rf"^{name}\s+http://127\.0\.0\.1:\d+\s+healthy in \d")
    rag.launched.expect(r"reranking off")
    status = rag.cli("status")
    assert status.returncode == 0, status.stderr
    assert "profile rag" in status.stdout
    assert "note      reranking off" in status.stdout
    for name in ("embedding", "dataprep", "retriever"):
        assert any(line.split()[:1] == [name] and "healthy" in line
                   for line in status.stdout.splitlines()), status.stdout


def test_a_documents_fact_is_answered_with_that_document_as_its_source(rag: RagSession
                                                                      ) -> None:
    clear(rag)
    with rag.dataprep() as dataprep:
        dataprep.add(rag.files / "garden.txt")
        dataprep.add(rag.files / "bluebird.pdf")
    with rag.client() as client:
        answer = client.chat(QUESTION, EXACT)
        assert "4417" in answer.text
        assert answer.sources[0].file == "bluebird.pdf"
        assert answer.sources[0].page == 1
        assert FACT in answer.sources[0].passage
        assert answer.sources[0].score is not None and answer.sources[0].score > 0.3

        streamed: list[Source] = []
        text = "".join(client.chat_stream(QUESTION, EXACT, on_sources=streamed.extend))
        assert "4417" in text
        assert [s.file for s in streamed][:1] == ["bluebird.pdf"]

        # The per-request switch: the model alone, no sources (and no code it could know).
        alone = client.chat(QUESTION, EXACT, use_documents=False)
        assert alone.sources == []
        assert "4417" not in alone.text


def test_docs_add_list_and_chat_through_the_command_line(rag: RagSession) -> None:
    clear(rag)
    added = rag.cli("docs", "add", str(rag.files))
    assert added.returncode == 0, added.stderr
    assert "added bluebird.pdf (1 chunk)" in added.stdout
    assert "2 of 2 files added" in added.stdout

    listed = rag.cli("docs", "list")
    assert listed.returncode == 0
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert sorted(rows) == ["bluebird.pdf", "garden.txt"]
    assert "1 chunk" in rows["bluebird.pdf"] and "added " in rows["bluebird.pdf"]

    chat = rag.cli("chat", QUESTION, "--max-tokens", "48")
    assert chat.returncode == 0, chat.stderr
    answer, _, sources = chat.stdout.partition("Sources:\n")
    assert answer.strip()
    assert sources.splitlines()[0].startswith("  [1] bluebird.pdf, page 1 (score ")
    assert "4417" in sources

    plain = rag.cli("chat", QUESTION, "--max-tokens", "16", "--no-documents")
    assert plain.returncode == 0 and "Sources:" not in plain.stdout

    removed = rag.cli("docs", "rm", "garden.txt")
    assert (removed.returncode, removed.stdout.strip()) == (0, "Removed garden.txt.")
    listed = rag.cli("docs", "list", "--json")
    assert '"bluebird.pdf"' in listed.stdout and "garden.txt" not in listed.stdout


def test_bad_document_commands_say_what_to_do(rag: RagSession, tmp_path: Path) -> None:
    missing = rag.cli("docs", "add", str(tmp_path / "nothing.pdf"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error: ") and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr

    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a PDF")
    (tmp_path / "fine.txt").write_text(OTHER, encoding="utf-8")
    mixed = rag.cli("docs", "add", str(tmp_path / "broken.pdf"), str(tmp_path / "fine.txt"))
    assert mixed.returncode == 1
    assert "Error: " in mixed.stderr and "broken.pdf" in mixed.stderr
    assert "added fine.txt" in mixed.stdout and "1 of 2 files added, 1 refused" in mixed.stdout

    unknown = rag.cli("docs", "rm", "never-added.pdf")
    assert unknown.returncode == 1 and unknown.stderr.startswith("Error: ")
    neither = rag.cli("docs", "rm")
    assert neither.returncode == 2 and "give a NAME or --all" in neither.stderr


def test_an_ingest_while_an_answer_streams_and_both_work(rag: RagSession) -> None:
    clear(rag)
    with rag.dataprep() as dataprep:
        dataprep.add(rag.files / "bluebird.pdf")
    pieces: list[str] = []
    sources: list[Source] = []
    first = threading.Event()

    def ask() -> None:
        with rag.client() as client:
            for piece in client.chat_stream(QUESTION, ChatParams(max_tokens=200,
                                                                 temperature=0.0),
                                            on_sources=sources.extend):
                pieces.append(piece)
                first.set()

    asking = threading.Thread(target=ask)
    asking.start()
    assert first.wait(120)
    with rag.dataprep() as dataprep:
        dataprep.add(rag.files / "garden.txt")  # while the answer streams
        names = [d.name for d in dataprep.documents()]
    asking.join(300)
    assert not asking.is_alive()
    assert sorted(names) == ["bluebird.pdf", "garden.txt"]
    assert "".join(pieces).strip()
    assert sources and sources[0].file == "bluebird.pdf"


def test_deleting_while_a_question_is_answered_ends_that_answer_normally(rag: RagSession
                                                                        ) -> None:
    clear(rag)
    with rag.dataprep() as dataprep:
        dataprep.add(rag.files / "bluebird.pdf")
    pieces: list[str] = []
    sources: list[Source] = []
    first = threading.Event()
    failure: list[BaseException] = []

    def ask() -> None:
        try:
            with rag.client() as client:
                for piece in client.chat_stream(QUESTION, ChatParams(max_tokens=200,
                                                                     temperature=0.0),
                                                on_sources=sources.extend):
                    pieces.append(piece)
                    first.set()
        except BaseException as error:  # reported below, in the test's own thread
            failure.append(error)
            first.set()

    asking = threading.Thread(target=ask)
    asking.start()
    assert first.wait(120)
    with rag.dataprep() as dataprep:
        dataprep.remove_all()
        assert dataprep.documents() == []
    asking.join(300)
    assert failure == []
    # The answer being written keeps the passages it was given, and says so.
    assert "".join(pieces).strip() and sources[0].file == "bluebird.pdf"
    with rag.client() as client:
        after = client.chat(QUESTION, EXACT)
    assert after.sources == []
