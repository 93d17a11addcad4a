"""The RAG services started for tests exactly as rag/README.md tells the launcher to."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from launcher.ports import pick_free_port
from launcher.processes import ChildProcess
from tests.services import running


def embedding_command(port: int, model_dir: Path) -> list[str]:
    return [sys.executable, "-m", "rag.embedding_server", "--host", "127.0.0.1",
            "--port", str(port), "--model-dir", str(model_dir), "--threads", "2"]


def dataprep_command(port: int, data_dir: Path, embedding_url: str,
                     max_file_mb: int = 50) -> list[str]:
    return [sys.executable, "-m", "rag.dataprep_server", "--host", "127.0.0.1",
            "--port", str(port), "--data-dir", str(data_dir), "--embedding-url", embedding_url,
            "--max-file-mb", str(max_file_mb)]


def retriever_command(port: int, data_dir: Path, embedding_url: str | None) -> list[str]:
    command = [sys.executable, "-m", "rag.retriever_server", "--host", "127.0.0.1",
               "--port", str(port), "--data-dir", str(data_dir)]
    return command + (["--embedding-url", embedding_url] if embedding_url else [])


@contextmanager
def embedding_service(model_dir: Path, log_dir: Path) -> Iterator[str]:
    port = pick_free_port()
    url = f"http://127.0.0.1:{port}"
    with running("embedding", embedding_command(port, model_dir), url + "/health", log_dir):
        yield url


@contextmanager
def dataprep_service(data_dir: Path, embedding_url: str, log_dir: Path,
                     max_file_mb: int = 50) -> Iterator[tuple[str, ChildProcess]]:
    port = pick_free_port()
    url = f"http://127.0.0.1:{port}"
    command = dataprep_command(port, data_dir, embedding_url, max_file_mb)
    with running("dataprep", command, url + "/v1/health_check", log_dir) as child:
        yield url, child


@contextmanager
def retriever_service(data_dir: Path, embedding_url: str | None,
                      log_dir: Path) -> Iterator[str]:
    port = pick_free_port()
    url = f"http://127.0.0.1:{port}"
    command = retriever_command(port, data_dir, embedding_url)
    with running("retriever", command, url + "/v1/health_check", log_dir):
        yield url
