"""The retriever service: OPEA's ``POST /v1/retrieval`` over the local index (rag.store),
answering with each passage's text and where it comes from (file, page or heading, score).

Run: ``python -m rag.retriever_server --port 7000 --data-dir DATA/rag
[--embedding-url http://127.0.0.1:6006]`` (see rag/README.md).
"""

from __future__ import annotations

import argparse
import threading
import uuid
from pathlib import Path

import numpy as np
import numpy.typing as npt
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from opea.errors import OpeaChatError
from rag import service
from rag.errors import DocumentError
from rag.ingest import Embed, http_embedder
from rag.search import SIMILARITY, search
from rag.store import Store


class RetrievalRequest(BaseModel):
    # ChatQnA's nodes pass extra fields along (ids, parameters): ignore what is not ours.
    model_config = ConfigDict(extra="ignore")

    text: str | None = None
    input: str | None = None
    embedding: list[float] | list[list[float]] | None = None
    k: int = 4
    search_type: str = SIMILARITY
    score_threshold: float = 0.2
    fetch_k: int = 20
    lambda_mult: float = 0.5


class Index:
    """The index's vectors in memory, brought up to date when dataprep has changed the index:
    after additions only the new chunks are read (a chunk's id is greater than every id before
    it, since the ones after the largest were never removed); after a removal, all of them
    (measured: 1.5 to 6 s for 100k chunks on a busy 2-core machine)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.generation = -1
        self.removals = -1
        self.ids: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.matrix: npt.NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)

    def current(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        with self.lock:
            generation, removals = self.store.counters()
            if generation == self.generation:
                return self.ids, self.matrix
            if removals == self.removals and self.ids.size:
                ids, matrix = self.store.vectors(after=int(self.ids[-1]))
                if ids.size:
                    self.ids = np.concatenate([self.ids, ids])
                    self.matrix = np.concatenate([self.matrix, matrix])
            else:
                self.ids, self.matrix = self.store.vectors()
            self.generation, self.removals = generation, removals
            return self.ids, self.matrix


def build_app(store: Store, embed: Embed | None) -> FastAPI:
    app = service.new_app("opea-chat retriever")
    index = Index(store)

    @app.get("/v1/health_check")
    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # A JSONResponse as is: FastAPI's encoding of a returned dict cost more than the search.
    @app.post("/v1/retrieval", response_class=JSONResponse)
    def retrieve(request: RetrievalRequest) -> JSONResponse:
        text = request.text if request.text is not None else request.input
        vector = request.embedding
        if vector and isinstance(vector[0], list):
            vector = vector[0]
        if not vector:
            if embed is None or not text:
                raise DocumentError("the request has no embedding",
                                    hint="send 'embedding' (the question's vector) with 'text'")
            query = embed([text])[0]
        else:
            query = np.asarray(vector, dtype=np.float32)
        ids, matrix = index.current()
        rows, scores = search(matrix, query, request.k, request.search_type,
                              request.score_threshold, request.fetch_k, request.lambda_mult)
        found = store.chunks([int(ids[r]) for r in rows])
        docs = []
        for row, score in zip(rows, scores, strict=True):
            chunk = found.get(int(ids[row]))
            if chunk is None:  # deleted between the search and this read
                continue
            docs.append({"id": str(chunk.id), "text": chunk.text, "metadata": {
                "source": chunk.source, "page": chunk.page, "heading": chunk.heading,
                "chunk": chunk.seq, "score": round(float(score), 4)}})
        return JSONResponse({"id": uuid.uuid4().hex, "retrieved_docs": docs,
                             "initial_query": text or "", "top_n": request.k})

    return app


def _build(args: argparse.Namespace) -> FastAPI:
    from threadpoolctl import threadpool_limits

    # One query's dot product is too small to share: with OpenBLAS's two threads on a busy
    # 2-core machine, 10k chunks took 21 ms p50 against 0.7 ms on one thread.
    threadpool_limits(limits=1, user_api="blas")
    try:
        store = Store(Path(args.data_dir).expanduser())
    except Exception as exc:
        raise OpeaChatError(f"cannot open the index in {args.data_dir} ({exc})",
                            hint="check that the folder is writable") from exc
    return build_app(store, http_embedder(args.embedding_url) if args.embedding_url else None)


def main(argv: list[str] | None = None) -> None:
    arguments = service.parser("rag.retriever_server", __doc__ or "")
    arguments.add_argument("--data-dir", required=True, help="the index folder")
    arguments.add_argument("--embedding-url", default=None,
                           help="embed questions sent without an embedding")
    service.run("retriever", argv, _build, arguments)


if __name__ == "__main__":
    main()
