"""`opea-chat docs`: which session it talks to, what it adds from folders, and its errors
when there is no session or no documents service."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from launcher.cli import main
from launcher.paths import resolve_paths
from launcher.records import ModelRecord, SessionRecord
from launcher.session_file import write_session
from opea.dataprep_client import Document, document_from, documents_in, files_under


def this_process_as_launcher(profile: str, urls: dict[str, str]) -> SessionRecord:
    """A session file naming this test process as its launcher (alive, so "running")."""
    return SessionRecord(
        launcher_pid=os.getpid(), launcher_create_time=psutil.Process().create_time(),
        runtime="local", profile=profile, model=ModelRecord("m", "/m.gguf", "gguf"),
        context_size=4096, started_at=time.time(), urls=urls, services=())


def test_docs_without_a_running_session_says_how_to_start_one(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["docs", "list"]) == 1
    err = capsys.readouterr().err
    assert err == ("Error: opea-chat is not running; start it with "
                   "`opea-chat launch --profile rag`\n")


def test_docs_against_a_chat_session_says_it_has_no_documents(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_session(resolve_paths().session_file,
                  this_process_as_launcher("chat", {"megaservice": "http://127.0.0.1:1"}))
    assert main(["docs", "add", str(home)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: the running opea-chat has no documents (profile chat)")
    assert "--profile rag" in err


def test_docs_add_of_a_folder_without_documents_says_what_it_takes(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_session(resolve_paths().session_file,
                  this_process_as_launcher("rag", {"dataprep": "http://127.0.0.1:1"}))
    (home / "empty").mkdir()
    assert main(["docs", "add", str(home / "empty")]) == 1
    assert capsys.readouterr().err == (
        "Error: no files to add there; give files or folders with PDF, DOCX, HTML, "
        "Markdown or text files\n")


def test_a_folder_adds_the_supported_files_under_it(tmp_path: Path) -> None:
    for name in ("b.pdf", "a.md", "notes/c.TXT", "notes/skip.exe", ".hidden/d.txt", "e.html"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    single = tmp_path / "notes" / "skip.exe"
    found = files_under([tmp_path, single])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.md", "b.pdf", "e.html", "notes/c.TXT", "notes/skip.exe"]


def test_the_document_list_reads_opeas_fields_and_ours() -> None:
    assert documents_in([{"name": "a.pdf", "id": "a.pdf", "type": "File", "parent": "",
                          "bytes": 2048, "chunks": 3, "added": "2026-12-02T11:00:00Z",
                          "status": "incomplete"}, "b.txt"]) == [
        Document("a.pdf", 2048, 3, "2026-12-02T11:00:00Z", "incomplete"), Document("b.txt")]
    assert document_from({"id": "only-id"}).name == "only-id"
