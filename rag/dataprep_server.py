"""The dataprep service: OPEA's ``/v1/dataprep/ingest``, ``/get`` and ``/delete`` over the
local index (rag.store), embedding through the embedding service.

Run: ``python -m rag.dataprep_server --port 6007 --data-dir DATA/rag
--embedding-url http://127.0.0.1:6006`` (see rag/README.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from opea.errors import OpeaChatError
from rag import service
from rag.chunks import CHUNK_OVERLAP, CHUNK_SIZE, check_sizes
from rag.documents import clean_name
from rag.errors import DocumentError
from rag.ingest import Embed, Progress, http_embedder, ingest
from rag.store import Store

log = logging.getLogger("opea_chat.rag.dataprep")
MAX_FILE_MB = 50


def _int_field(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise DocumentError(f"{name} must be a whole number, not '{value}'",
                            hint=f"send {name}={default} or leave it out") from None


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise DocumentError("the request body is not JSON",
                            hint='send {"file_path": "NAME"} or {"file_path": "all"}') from None
    return value if isinstance(value, dict) else {}


def build_app(store: Store, embed: Embed, max_file_mb: int = MAX_FILE_MB) -> FastAPI:
    app = service.new_app("opea-chat dataprep")
    progress = Progress()
    # One ingest at a time: the progress is one file's, and SQLite has one writer anyway.
    ingesting = threading.Lock()
    limit = max_file_mb * 1024 * 1024

    @app.get("/v1/health_check")
    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/dataprep/progress")
    def get_progress() -> dict[str, Any]:
        return progress.snapshot()

    @app.post("/v1/dataprep/ingest")
    async def ingest_files(request: Request) -> JSONResponse:
        form = await request.form(max_files=1000)
        if form.get("link_list"):
            raise DocumentError("link_list is not supported: opea-chat indexes files only",
                                hint="download the pages and add the files")
        size = _int_field(form.get("chunk_size"), "chunk_size", CHUNK_SIZE)
        overlap = _int_field(form.get("chunk_overlap"), "chunk_overlap", CHUNK_OVERLAP)
        check_sizes(size, overlap)
        uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        if not uploads:
            raise DocumentError("no file in the request",
                                hint="send the files as multipart form parts named 'files'")
        done: list[dict[str, Any]] = []
        errors: list[DocumentError] = []
        for upload in uploads:
            try:
                name = clean_name(upload.filename or "")
                size_bytes = upload.size or 0
                if size_bytes > limit:
                    raise DocumentError(
                        f"{name} is {size_bytes / 1e6:.1f} MB; the limit is {max_file_mb} MB",
                        hint="split it into smaller files", status=413)
                data = await upload.read()
                result = await anyio.to_thread.run_sync(
                    _ingest_one, name, data, size, overlap)
                done.append(result)
            except DocumentError as error:
                log.info("refused %s: %s", upload.filename, error.one_line())
                errors.append(error)
            finally:
                await upload.close()
        if errors:
            status = errors[0].status
            detail = errors[0].one_line() if len(errors) == 1 else \
                " | ".join(e.one_line() for e in errors)
            return JSONResponse({"detail": detail, "files": done}, status_code=status)
        return JSONResponse({"status": 200, "message": "Data preparation succeeded",
                             "files": done})

    def _ingest_one(name: str, data: bytes, size: int, overlap: int) -> dict[str, Any]:
        with ingesting:
            try:
                result = ingest(store, embed, name, data, size, overlap, progress)
            finally:
                progress.set(active=False, stage=None)
        log.info("ingested %s: %d chunks%s", name, result.chunks,
                 " (replaced the older one)" if result.replaced else "")
        return {"name": result.name, "chunks": result.chunks, "bytes": result.bytes,
                "replaced": result.replaced}

    @app.post("/v1/dataprep/get")
    def get_files() -> list[dict[str, Any]]:
        return [{"name": f.name, "id": f.name, "type": "File", "parent": "", "bytes": f.bytes,
                 "chunks": f.chunks, "added": f.added, "status": f.status}
                for f in store.files()]

    @app.post("/v1/dataprep/delete")
    async def delete(request: Request) -> dict[str, bool]:
        target = (await _body(request)).get("file_path")
        if not isinstance(target, str) or not target:
            raise DocumentError("no file_path in the request",
                                hint='send {"file_path": "NAME"} or {"file_path": "all"}')
        if target == "all":
            await anyio.to_thread.run_sync(store.delete_all)
            return {"status": True}
        name = clean_name(target)
        if not await anyio.to_thread.run_sync(store.delete, name):
            raise DocumentError(f"no document named {name} in the index",
                                hint="list them with POST /v1/dataprep/get", status=404)
        return {"status": True}

    return app


def _build(args: argparse.Namespace) -> FastAPI:
    try:
        store = Store(Path(args.data_dir).expanduser())
    except (OSError, Exception) as exc:
        raise OpeaChatError(f"cannot open the index in {args.data_dir} ({exc})",
                            hint="check that the folder is writable") from exc
    interrupted = store.mark_interrupted()
    if interrupted:
        log.warning("%d file(s) were being ingested when the last run stopped: listed as "
                    "incomplete", interrupted)
    return build_app(store, http_embedder(args.embedding_url), args.max_file_mb)


def main(argv: list[str] | None = None) -> None:
    arguments = service.parser("rag.dataprep_server", __doc__ or "")
    arguments.add_argument("--data-dir", required=True, help="the index folder")
    arguments.add_argument("--embedding-url", required=True,
                           help="the embedding service, e.g. http://127.0.0.1:6006")
    arguments.add_argument("--max-file-mb", type=int, default=MAX_FILE_MB,
                           help=f"largest file accepted, in MB (default {MAX_FILE_MB})")
    service.run("dataprep", argv, _build, arguments)


if __name__ == "__main__":
    main()
