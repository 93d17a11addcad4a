"""The memory estimate against the real llama.cpp server: what doctor and launch promise
("fits") must cover what the server really takes, without crying wolf."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from launcher.ports import pick_free_port
from models.gguf import read_header
from models.memory import MIB, estimate
from tests.services import running

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("context", [512, 4096])
def test_the_estimate_covers_the_real_servers_memory(smollm2: Path, tmp_path: Path,
                                                     context: int) -> None:
    port = pick_free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2),
               "--model_alias", "smollm2-135m", "--host", "127.0.0.1", "--port", str(port),
               "--n_ctx", str(context)]
    with running("llm", command, url + "/v1/models", tmp_path) as child:
        # An answer makes the server touch its compute buffers and part of its KV cache.
        answer = httpx.post(url + "/v1/chat/completions", timeout=120, json={
            "messages": [{"role": "user", "content": "Name three colours."}],
            "max_tokens": 32})
        assert answer.status_code == 200
        used = psutil.Process(child.pid).memory_info().rss
    estimated = estimate(read_header(smollm2).shape(), context, "llama.cpp")
    need = estimated.total
    assert used <= need, f"the server used {used:,} bytes, more than the {need:,} estimated"
    assert need <= 3 * used, f"estimated {need:,} bytes for a server that used {used:,}"
    # The KV cache part is exact: llama.cpp logs the buffers it allocated for it.
    log = (tmp_path / "llm.log").read_text(errors="replace")
    reported = [float(mib) for mib in re.findall(r"KV buffer size\s*=\s*([\d.]+) MiB", log)]
    assert reported, log[-3000:]
    assert abs(sum(reported) * MIB - estimated.kv_cache) <= 0.01 * MIB * len(reported)
