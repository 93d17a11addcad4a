"""Starting the real services for tests, with the product's own process code."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from launcher.local_runtime import child_environment
from launcher.ports import pick_free_port
from launcher.processes import ChildProcess, log_tail, start_child, stop_child


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


@contextmanager
def llm_server(model: Path, log_dir: Path, context_size: int = 1024) -> Iterator[str]:
    port = pick_free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
               "--model_alias", "smollm2-135m", "--host", "127.0.0.1", "--port", str(port),
               "--n_ctx", str(context_size)]
    with running("llm", command, url + "/v1/models", log_dir):
        yield url


@contextmanager
def megaservice(llm_url: str, log_dir: Path) -> Iterator[str]:
    port = pick_free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "opea.megaservice", "--port", str(port),
               "--llm-url", llm_url, "--model", "smollm2-135m"]
    with running("megaservice", command, url + "/v1/health_check", log_dir):
        yield url
