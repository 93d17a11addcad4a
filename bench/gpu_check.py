"""The GPU check's measurements (run by scripts/gpu-check.sh on a machine with an NVIDIA GPU).

For each model and each llama.cpp build (the CPU build of .venv, the CUDA build installed
under ``--cuda-site``), the local runtime's own LLM server command is started on 127.0.0.1
(all layers on the GPU for the CUDA build), then: time to ready, time to first token and
tokens/s of streamed answers, and the VRAM it holds against the fit estimate doctor and
launch use. NVML facts and doctor's verdicts go into the same JSON.

    python -m bench.gpu_check --model SmolLM2.gguf [--model big.gguf] --cuda-site DIR \\
        --doctor doctor.json --out gpu-check.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import httpx

from launcher.devices import model_need
from launcher.gpu import probe_gpus
from launcher.local_runtime import child_environment, service_command
from launcher.paths import resolve_paths
from launcher.plan import plan_stack
from launcher.ports import pick_free_port
from launcher.processes import start_child, stop_child
from launcher.settings import load_settings
from models.memory import CUDA_CONTEXT_BYTES
from models.store import LocalModel, inspect_model

CONTEXT = 4096
ANSWERS = 3
MAX_TOKENS = 128
READY_TIMEOUT = 300.0
PROMPT = "Write a short paragraph about {topic}."
TOPICS = ("the sea", "mountains", "bread")


def gpu_used_bytes() -> int | None:
    """Memory in use on every GPU together (NVML), or None without a GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return sum(int(pynvml.nvmlDeviceGetMemoryInfo(
                pynvml.nvmlDeviceGetHandleByIndex(i)).used)
                for i in range(pynvml.nvmlDeviceGetCount()))
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return None


def stream_once(url: str, model: str, topic: str) -> dict[str, float]:
    """One streamed answer: seconds to the first token, tokens/s after it."""
    body = {"model": model, "stream": True, "max_tokens": MAX_TOKENS, "temperature": 0,
            "messages": [{"role": "user", "content": PROMPT.format(topic=topic)}]}
    started = time.perf_counter()
    first: float | None = None
    pieces = 0
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=300) as reply:
        reply.raise_for_status()
        for line in reply.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"][0].get("delta", {})
            if delta.get("content"):
                pieces += 1
                if first is None:
                    first = time.perf_counter()
    ended = time.perf_counter()
    if first is None:
        raise RuntimeError("the server streamed no token")
    return {"ttft_s": first - started,
            "tokens_per_s": (pieces - 1) / (ended - first) if pieces > 1 else 0.0,
            "tokens": pieces}


def measure(model: LocalModel, build: str, cuda_site: Path | None, log_dir: Path
            ) -> dict[str, Any]:
    """Start the local runtime's LLM server with this build and measure it."""
    settings = load_settings(resolve_paths(), {}, flags={"context_size": CONTEXT})
    plan = plan_stack(settings, model, lambda port: True, pick_free_port, runtime="local")
    llm = replace(plan.service("llm"), port=pick_free_port())
    gpu_layers = -1 if build == "cuda" else 0
    env = child_environment()
    if cuda_site is not None and build == "cuda":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cuda_site),
                                                         env.get("PYTHONPATH")]))
    before = gpu_used_bytes()
    started = time.perf_counter()
    child = start_child(f"llm-{build}", service_command(llm, plan, gpu_layers),
                        log_dir / f"llm-{build}-{model.name}.log", env)
    result: dict[str, Any] = {"build": build, "model": model.name, "gpu_layers": gpu_layers,
                              "context": CONTEXT}
    try:
        deadline = started + READY_TIMEOUT
        while True:
            if child.exit_code() is not None:
                raise RuntimeError(f"the server exited ({child.exit_code()}); see "
                                   f"{child.log_path}")
            try:
                if httpx.get(f"{llm.url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() > deadline:
                raise RuntimeError(f"not ready within {READY_TIMEOUT:g} s")
            time.sleep(0.1)
        result["time_to_ready_s"] = time.perf_counter() - started
        runs = [stream_once(llm.url, model.name, TOPICS[i % len(TOPICS)])
                for i in range(ANSWERS)]
        result["ttft_s"] = statistics.median(r["ttft_s"] for r in runs)
        result["tokens_per_s"] = statistics.median(r["tokens_per_s"] for r in runs)
        after = gpu_used_bytes()
        if before is not None and after is not None:
            result["vram_used_bytes"] = after - before
    except Exception as error:  # one failed build or model is a finding, not the end
        result["error"] = str(error)
    finally:
        stop_child(child)
    need = model_need(model, CONTEXT)
    result["fit_estimate_bytes"] = need.total + (CUDA_CONTEXT_BYTES if build == "cuda" else 0)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check")
    parser.add_argument("--model", action="append", type=Path, required=True)
    parser.add_argument("--cuda-site", type=Path)
    parser.add_argument("--doctor", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--logs", type=Path, default=Path("gpu-check-logs"))
    args = parser.parse_args(argv)
    report = probe_gpus()
    if not report.usable:
        print(f"Error: no usable NVIDIA GPU: {report.problem}", file=sys.stderr)
        return 1
    results: dict[str, Any] = {"nvml": asdict(report), "runs": []}
    if args.doctor is not None and args.doctor.is_file():
        results["doctor"] = json.loads(args.doctor.read_text())
    for path in args.model:
        model = LocalModel(path.stem, path, path.stat().st_size)
        model = replace(model, info=inspect_model(model))
        for build in ("cpu", "cuda"):
            print(f"{model.name}: {build} build ...", flush=True)
            run = measure(model, build, args.cuda_site, args.logs)
            print(json.dumps(run), flush=True)
            results["runs"].append(run)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"Wrote {args.out}")
    return 0 if all("error" not in run for run in results["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
