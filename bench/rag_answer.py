"""Time to first token of a RAG answer against a plain chat answer, same question, same
model, one megaservice (the rag graph; ``use_documents: false`` for the plain answer).

    .venv/bin/python -m bench.rag_answer [--runs N]

Starts the real services (SmolLM2 on llama.cpp, the embedding, dataprep and retriever
servers, the megaservice with the rag graph), adds a few documents, then asks each
question both ways, alternating which goes first. Prints the medians and the cost of the
retrieval step alone (embed + retrieve, as the megaservice does it).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from app.chat import AnswerStream
from launcher.ports import pick_free_port
from models.embedding import DEFAULT_EMBEDDING_MODEL, pull_embedding_model
from models.pull import pull_model
from opea.client import ChatParams, OpeaClient
from opea.dataprep_client import DataprepClient
from opea.stack import LOCAL_RAG_MEGASERVICE
from tests.rag_services import dataprep_service, embedding_service, retriever_service
from tests.services import llm_server, running, service_command

DOCUMENTS = {
    "bluebird.txt": "The launch code of Project Bluebird is 4417. The project started in "
                    "March and is run by Dana Okafor from the Lisbon office.",
    "garden.txt": "Tomato plants need six hours of sun a day. Water them at the base in the "
                  "morning, and stake them once they are a foot tall.",
    "kettle.md": "# Descaling\nFill the kettle with equal parts water and white vinegar, "
                 "boil, leave it for an hour, then rinse twice.",
}
QUESTIONS = ["What is the launch code of Project Bluebird?", "Who runs Project Bluebird?",
             "How many hours of sun do tomato plants need?", "How do I descale the kettle?",
             "When should tomatoes be staked?", "Where is the Bluebird team based?"]


def first_token(client: OpeaClient, question: str, use_documents: bool) -> float:
    stream = AnswerStream(client.chat_stream(question, ChatParams(max_tokens=16,
                                                                  temperature=0.0),
                                             use_documents=use_documents))
    for _ in stream.updates():
        pass
    assert stream.first_token_seconds is not None
    return stream.first_token_seconds


def retrieval_step(embedding_url: str, retriever_url: str, question: str) -> float:
    start = time.perf_counter()
    vector = httpx.post(embedding_url + "/embed", json={"inputs": question}).json()[0]
    httpx.post(retriever_url + "/v1/retrieval",
               json={"text": question, "embedding": vector, "k": 4}).raise_for_status()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rag_answer")
    parser.add_argument("--runs", type=int, default=len(QUESTIONS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rag-") as scratch:
        root = Path(scratch)
        model = pull_model("smollm2-135m", root / "models", say=lambda text: None).path
        minilm = pull_embedding_model(DEFAULT_EMBEDDING_MODEL, root / "models",
                                      say=lambda text: None).path
        logs, data = root / "logs", root / "rag"
        logs.mkdir()
        for name, text in DOCUMENTS.items():
            (root / name).write_text(text, encoding="utf-8")
        with llm_server(model, logs, context_size=2048) as llm, \
                embedding_service(minilm, logs) as embedding, \
                dataprep_service(data, embedding, logs) as (dataprep, _), \
                retriever_service(data, embedding, logs) as retriever:
            port = pick_free_port()
            url = f"http://127.0.0.1:{port}"
            command = service_command(LOCAL_RAG_MEGASERVICE, port, llm_url=llm,
                                      embedding_url=embedding, retriever_url=retriever)
            with running("megaservice", command, url + "/v1/health_check", logs), \
                    OpeaClient(url) as client, DataprepClient(dataprep) as documents:
                for name in DOCUMENTS:
                    documents.add(root / name)
                first_token(client, "Warm up.", False)
                rag: list[float] = []
                plain: list[float] = []
                step: list[float] = []
                for run in range(args.runs):
                    question = QUESTIONS[run % len(QUESTIONS)]
                    order = (True, False) if run % 2 == 0 else (False, True)
                    for use_documents in order:
                        seconds = first_token(client, question, use_documents)
                        (rag if use_documents else plain).append(seconds)
                    step.append(retrieval_step(embedding, retriever, question))
    rag_p50, plain_p50 = statistics.median(rag), statistics.median(plain)
    print(f"time to first token, RAG answer:   p50 {rag_p50:.3f} s (runs: {len(rag)})")
    print(f"time to first token, plain answer: p50 {plain_p50:.3f} s")
    print(f"RAG / plain: {rag_p50 / plain_p50:.2f}x; retrieval step alone (embed + "
          f"retrieve): p50 {statistics.median(step) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
