"""The embedding service: all-MiniLM-L6-v2 (ONNX) behind TEI's and OpenAI's embedding APIs.

Run: ``python -m rag.embedding_server --port 6006 --model-dir MODELS/all-minilm-l6-v2``
(see rag/README.md). The model loads before the port answers, so ``GET /health`` = ready.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from rag import service
from rag.embedder import DIMENSION, MAX_TOKENS, Embedder
from rag.errors import DocumentError

MODEL_NAME = "all-minilm-l6-v2"
MAX_INPUTS = 512


class TeiRequest(BaseModel):
    inputs: str | list[str]
    normalize: bool = True
    truncate: bool = True


class OpenAIRequest(BaseModel):
    input: str | list[str]
    model: str | None = None
    encoding_format: str = "float"


def _texts(value: str | list[str]) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not texts:
        raise DocumentError("nothing to embed: the input is empty",
                            hint="send at least one text")
    if len(texts) > MAX_INPUTS:
        raise DocumentError(f"{len(texts)} texts in one request; at most {MAX_INPUTS}",
                            hint="send them in smaller batches", status=413)
    return texts


def build_app(embedder: Embedder, model_name: str = MODEL_NAME) -> FastAPI:
    app = service.new_app("opea-chat embedding")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    def info() -> dict[str, Any]:
        return {"model_id": model_name, "dimension": DIMENSION, "max_input_length": MAX_TOKENS}

    @app.post("/embed")
    def embed(request: TeiRequest) -> list[list[float]]:
        return embedder.embed(_texts(request.inputs)).tolist()  # type: ignore[no-any-return]

    @app.post("/v1/embeddings")
    def embeddings(request: OpenAIRequest) -> dict[str, Any]:
        texts = _texts(request.input)
        vectors = embedder.embed(texts)
        tokens = embedder.count_tokens(texts)
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": v.tolist()}
                     for i, v in enumerate(vectors)],
            "model": model_name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    return app


def _build(args: argparse.Namespace) -> FastAPI:
    return build_app(Embedder(Path(args.model_dir).expanduser(), threads=args.threads))


def main(argv: list[str] | None = None) -> None:
    arguments = service.parser("rag.embedding_server", __doc__ or "")
    arguments.add_argument("--model-dir", required=True,
                           help="folder holding model.onnx and tokenizer.json")
    arguments.add_argument("--threads", type=int, default=None,
                           help="CPU threads for the model (default: up to 4)")
    service.run("embedding", argv, _build, arguments)


if __name__ == "__main__":
    main()
