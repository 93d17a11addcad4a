"""`opea-chat docs add|list|rm`: the documents of the running session's rag profile, through
OPEA's dataprep API (``opea.dataprep_client``), like `opea-chat chat` talks to its
megaservice."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx

from launcher.paths import Paths
from launcher.session_file import read_session
from launcher.sizes import human_size
from launcher.stop import running_launcher
from opea.dataprep_client import DataprepClient, Document, files_under
from opea.errors import DocumentRefusedError, OpeaChatError, ServiceUnreachableError

POLL_SECONDS = 0.3


def dataprep_url(paths: Paths) -> str:
    record = read_session(paths.session_file)
    if running_launcher(record) is None or record is None:
        raise ServiceUnreachableError("opea-chat is not running",
                                      hint="start it with `opea-chat launch --profile rag`")
    url = record.urls.get("dataprep")
    if not url:
        raise ServiceUnreachableError(
            f"the running opea-chat has no documents (profile {record.profile})",
            hint="stop it and start `opea-chat launch --profile rag`")
    return str(url)


def describe(document: Document) -> str:
    parts = [human_size(document.size_bytes) if document.size_bytes is not None else "?"]
    if document.chunks is not None:
        parts.append(f"{document.chunks} chunk{'s' * (document.chunks != 1)}")
    if document.added:
        parts.append(f"added {document.added}")
    if document.status == "incomplete":
        parts.append("INCOMPLETE: add it again or remove it")
    return ", ".join(parts)


def _chunks_added(answer: Any, name: str) -> int | None:
    files = answer.get("files") if isinstance(answer, dict) else None
    for item in files or []:
        if isinstance(item, dict) and item.get("chunks") is not None:
            return int(item["chunks"])
    return None


@contextmanager
def _bar(total: int, interactive: bool) -> Iterator[Any]:
    if not interactive:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  transient=True) as progress:
        yield progress, progress.add_task("adding", total=total)


def _watch(client: DataprepClient, bar: Any, name: str, stop: threading.Event) -> None:
    """Show the running file's stage and chunks while its request runs."""
    progress, task = bar
    while not stop.wait(POLL_SECONDS):
        # A progress poll must never break an ingest: a failed one just shows nothing.
        try:
            state = client.progress()
        except (OpeaChatError, httpx.HTTPError):
            state = None
        if state is None:
            continue
        if state.active and state.total:
            progress.update(task, description=f"{name}: {state.stage or 'working'} "
                                              f"{state.done}/{state.total} chunks")


def add(paths: Paths, targets: list[Path], out: IO[str] = sys.stdout,
        err: IO[str] = sys.stderr) -> int:
    url = dataprep_url(paths)  # first: no session is the first thing to say
    files = files_under(targets)
    if not files:
        raise DocumentRefusedError("no files to add there",
                                   hint="give files or folders with PDF, DOCX, HTML, "
                                        "Markdown or text files")
    refused = 0
    with DataprepClient(url) as client, _bar(len(files), out.isatty()) as bar:

        def say(line: str, stream: IO[str]) -> None:
            """Above the live bar while there is one (a plain print would tear it)."""
            if bar is not None and stream is out:
                bar[0].console.print(line, markup=False, highlight=False)
            else:
                print(line, file=stream)

        for path in files:
            stop = threading.Event()
            watcher = None
            if bar is not None:
                bar[0].update(bar[1], description=path.name)
                watcher = threading.Thread(target=_watch, args=(client, bar, path.name, stop),
                                           daemon=True)
                watcher.start()
            try:
                answer = client.add(path)
            except DocumentRefusedError as error:
                refused += 1
                say(f"Error: {path}: {error.one_line()}", err)
                continue
            finally:
                stop.set()
                if watcher is not None:
                    watcher.join()
                if bar is not None:
                    bar[0].advance(bar[1])
            chunks = _chunks_added(answer, path.name)
            count = f" ({chunks} chunk{'s' * (chunks != 1)})" if chunks is not None else ""
            say(f"added {path.name}{count}", out)
    added = len(files) - refused
    print(f"{added} of {len(files)} file{'s' * (len(files) != 1)} added"
          + (f", {refused} refused" if refused else ""), file=out)
    return 1 if refused else 0


def show(paths: Paths, as_json: bool, out: IO[str] = sys.stdout) -> int:
    with DataprepClient(dataprep_url(paths)) as client:
        documents = client.documents()
    if as_json:
        print(json.dumps([d.to_json() for d in documents], indent=2), file=out)
        return 0
    if not documents:
        print("No documents yet: add some with `opea-chat docs add PATH...`", file=out)
    for document in documents:
        print(f"{document.name:<40} {describe(document)}", file=out)
    return 0


def remove(paths: Paths, name: str | None, every: bool, out: IO[str] = sys.stdout) -> int:
    with DataprepClient(dataprep_url(paths)) as client:
        if every:
            count = len(client.documents())
            client.remove_all()
            print(f"Removed all documents ({count}).", file=out)
            return 0
        assert name is not None
        client.remove(name)
    print(f"Removed {name}.", file=out)
    return 0
