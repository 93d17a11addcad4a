"""opea-chat's benchmark: one command, numbers for every claim, comparisons as ratios
measured side by side in the same run.

    scripts/bench.sh [--runs N] [--soak N] [--no-docker] [--page-only] [--write-docs]

Writes bench/results.json and bench/results.md (and, with --write-docs,
docs/performance.md). Not part of the tests' pass/fail: the machines are shared and noisy;
each figure is the median of several runs, each comparison a ratio within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil

from bench import cli_timing, launches, page, soak, streaming
from bench.report import markdown, performance_page
from launcher.paths import resolve_paths
from launcher.ports import pick_free_port
from launcher.records import ProcessRecord
from launcher.session_file import read_session
from models.pull import pull_model
from tests.docker_images import PYTHON as TEST_BASE_IMAGE
from tests.docker_images import STAND_INS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"


def machine() -> dict[str, Any]:
    from launcher.local_runtime import cpu_name

    return {"cpu": cpu_name(), "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
            "os": platform.platform(), "python": platform.python_version(),
            "load_average_at_start": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def write_reports(results: dict[str, Any], docs: bool) -> str:
    """bench/results.md and, with ``docs``, docs/performance.md (with bench/findings.md,
    written by hand); returns the table."""
    table = markdown(results)
    (ROOT / "bench" / "results.md").write_text(table)
    if docs:
        findings = ROOT / "bench" / "findings.md"
        (ROOT / "docs" / "performance.md").write_text(performance_page(
            results, table, findings.read_text() if findings.exists() else ""))
    return table


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def launch_section(model: Path, runtime: str, runs: int,
                   extra: tuple[str, ...] = ()) -> dict[str, Any]:
    timings = []
    for run in range(runs):
        say(f"{runtime} runtime: launch {run + 1} of {runs}")
        timings.append(launches.time_launch(model, runtime, extra))
    lags = [lag for t in timings for lag in t.detection_lag_ms.values()]
    return {
        "ready_line_s": launches.summary([t.ready_line for t in timings]),
        "answered_s": launches.summary([t.answered for t in timings]),
        "healthy_at_s": {name: statistics.median(t.healthy_reported[name] for t in timings)
                         for name in launches.SERVICES},
        "detection_lag_ms": launches.summary(lags),
        "stop_s": launches.summary([t.stop_seconds for t in timings]),
        "peak_rss_mb": {name: max(t.peak_rss_mb.get(name, 0.0) for t in timings)
                        for name in timings[0].peak_rss_mb},
        "runs": [asdict(t) for t in timings],
    }


def compose_section(model: Path, runs: int) -> dict[str, Any]:
    launches.ensure_app_image(TEST_BASE_IMAGE)
    timings = []
    for run in range(runs):
        say(f"docker-compose up: run {run + 1} of {runs}")
        timings.append(launches.time_compose(model))
    return {"answered_s": launches.summary([t.answered for t in timings]),
            "up_returned_s": launches.summary([t.up_returned for t in timings]),
            "down_s": launches.summary([t.down_seconds for t in timings])}


def running_session_sections(model: Path, runs: int, soak_chats: int,
                             page_only: bool = False) -> dict[str, Any]:
    """Streaming, concurrency, soak and `status` against one running local session (or
    only the chat page against curl)."""
    import threading

    with launches.bench_home(model) as home:
        ports = {name: pick_free_port() for name in launches.SERVICES}
        env = {**os.environ, "OPEA_CHAT_HOME": str(home),
               **{f"OPEA_CHAT_{n.upper()}_PORT": str(p) for n, p in ports.items()}}
        launcher = subprocess.Popen([sys.executable, "-m", "launcher", "launch", "--no-browser",
                                     "--runtime", "local"], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
        ready = threading.Event()

        def read() -> None:
            assert launcher.stdout is not None
            for line in launcher.stdout:
                if line.startswith("Ready: "):
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        try:
            if not ready.wait(300):
                raise RuntimeError("the local session did not become ready")
            record = read_session(home / "state" / "session.json")
            assert record is not None
            llm = record.urls["llm"]
            mega = record.urls["megaservice"]
            name = record.model.name
            if page_only:
                say("the chat page in Chromium against curl, same prompts")
                return {"page": page.compare(record.urls["app"], mega, runs)}
            say("streaming: direct against through the megaservice")
            stream = streaming.compare(llm, mega, name, runs)
            say("8 concurrent streams each way")
            parallel = streaming.concurrent(llm, mega, name)
            say("the chat page in Chromium against curl, same prompts")
            in_page = page.compare(record.urls["app"], mega, runs)
            say(json.dumps(in_page))
            say("opea-chat status with a running session")
            status_running = cli_timing.cold(home, ["status"])
            say(f"soak: {soak_chats} chats, 8 at a time")
            pids = {s.name: s.pid for s in record.services if isinstance(s, ProcessRecord)}
            pids["launcher"] = launcher.pid
            soaked = soak.soak(mega, pids, total=soak_chats)
        finally:
            launches.cli(home, "stop")
            launcher.wait(60)
    return {"streaming": stream, "concurrent": parallel, "page": in_page, "soak": soaked,
            "status_running_s": status_running}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--runs", type=int, default=3, help="launches per runtime")
    parser.add_argument("--stream-runs", type=int, default=8)
    parser.add_argument("--soak", type=int, default=300, metavar="CHATS")
    parser.add_argument("--no-docker", action="store_true",
                        help="skip the docker runtime and docker-compose")
    parser.add_argument("--write-docs", action="store_true",
                        help="also write docs/performance.md")
    parser.add_argument("--docs-only", action="store_true",
                        help="measure nothing: write docs/performance.md from the last "
                             "bench/results.json (after editing bench/findings.md)")
    parser.add_argument("--page-only", action="store_true",
                        help="measure only the chat page against curl and update that part "
                             "of the last bench/results.json")
    args = parser.parse_args()
    if args.docs_only:
        write_reports(json.loads(RESULTS.read_text()), docs=True)
        return 0
    if args.page_only:
        model = pull_model("smollm2-135m", resolve_paths().models_dir, say=say).path
        last = json.loads(RESULTS.read_text())
        last.update(running_session_sections(model, args.stream_runs, 0, page_only=True))
        last["page"]["machine"] = machine()
        RESULTS.write_text(json.dumps(last, indent=2) + "\n")
        print(write_reports(last, docs=args.write_docs))
        return 0

    model = pull_model("smollm2-135m", resolve_paths().models_dir, say=say).path
    results: dict[str, Any] = {"machine": machine(), "model": model.name}
    results["local"] = launch_section(model, "local", args.runs)
    if not args.no_docker and shutil.which("docker-compose"):
        # The test images (scripts/bench.sh builds them) under their own names: the docker
        # runtime and the exported compose file are pointed at them by the images setting.
        os.environ.update(STAND_INS)
        results["docker"] = launch_section(model, "docker", args.runs,
                                           ("--gpus", "none", "--pull", "never"))
        results["compose"] = compose_section(model, args.runs)
    results.update(running_session_sections(model, args.stream_runs, args.soak))
    with launches.bench_home(model) as idle_home:
        say("CLI: --help, status and doctor in cold processes")
        results["cli"] = {"help": cli_timing.cold(idle_home, ["--help"]),
                          "status_not_running": cli_timing.cold(idle_home, ["status"])}
        if "doctor" in launches.cli(idle_home, "--help").stdout:
            results["cli"]["doctor"] = cli_timing.cold(idle_home, ["doctor"])

    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(write_reports(results, docs=args.write_docs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
