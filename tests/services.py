"""Starting the real services for tests, with the product's own process code and the
product's own commands (the stack's ``local_command`` templates)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from launcher.local_runtime import child_environment
from launcher.plan import render
from launcher.ports import HOST, pick_free_port
from launcher.processes import ChildProcess, log_tail, start_child, stop_child
from opea.stack import CHAT_MEGASERVICE, LLAMA_CPP_PYTHON, ServiceSpec


@contextmanager
def running(name: str, command: list[str], health_url: str, log_dir: Path,
            timeout: float = 120) -> Iterator[ChildProcess]:
    child = start_child(name, command, log_dir / f"{name}.log", child_environment())
    try:
        deadline = time.monotonic() + timeout
        while True:
            if child.exit_code() is not None:
                raise RuntimeError(f"{name} exited:\n{log_tail(child.log_path)}")
            try:
                if httpx.get(health_url, timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not healthy:\n{log_tail(child.log_path)}")
            time.sleep(0.1)
        yield child
    finally:
        stop_child(child)


def service_command(spec: ServiceSpec, port: int, **values: str) -> list[str]:
    """The command the stack gives for ``spec`` on the local runtime, filled in for a test."""
    assert spec.local_command is not None
    return render(spec.local_command, {"python": sys.executable, "host": HOST,
                                       "port": str(port), "model_name": "smollm2-135m",
                                       **values})


@contextmanager
def llm_server(model: Path, log_dir: Path, context_size: int = 1024) -> Iterator[str]:
    port = pick_free_port()
    url = f"http://127.0.0.1:{port}"
    command = service_command(LLAMA_CPP_PYTHON, port, model_path=str(model),
                       context_size=str(context_size), threads=str(os.cpu_count() or 1),
                       gpu_layers="0")
    with running("llm", command, url + LLAMA_CPP_PYTHON.health.path, log_dir):
        yield url


@contextmanager
def megaservice(llm_url: str, log_dir: Path) -> Iterator[str]:
    port = pick_free_port()
    url = f"http://127.0.0.1:{port}"
    command = service_command(CHAT_MEGASERVICE, port, llm_url=llm_url)
    with running("megaservice", command, url + CHAT_MEGASERVICE.health.path, log_dir):
        yield url
