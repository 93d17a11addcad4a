"""Timing `opea-chat launch` (local and docker runtimes) and `docker-compose up` of the
exported stack, each to the moment the megaservice answers a chat; readiness detection lag;
teardown; peak memory of each process.

Each launch gets a fresh OPEA_CHAT_HOME (the model linked in) and random free ports, so the
runs do not disturb each other or anything else on the machine.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from launcher.docker_plan import LABEL_HOME, home_label
from launcher.ports import is_port_free, pick_free_port
from launcher.records import ProcessRecord
from launcher.session_file import read_session
from opea.client import ChatParams, OpeaClient
from opea.stack import CHAT_APP, CHAT_MEGASERVICE, LLAMA_CPP_PYTHON, LLAMA_CPP_SERVER

SERVICES = ("llm", "megaservice", "app")
# Each service's health path per runtime, from the stack's data (the LLM server differs).
HEALTH = {"llm": {"local": LLAMA_CPP_PYTHON.health.path, "docker": LLAMA_CPP_SERVER.health.path},
          **{spec.name: {"local": spec.health.path, "docker": spec.health.path}
             for spec in (CHAT_MEGASERVICE, CHAT_APP)}}
PROBE_INTERVAL = 0.005


@dataclass
class LaunchTiming:
    """One launch, all times in seconds from the moment the command was started."""

    runtime: str
    ready_line: float = 0.0          # "Ready:" printed
    answered: float = 0.0            # first chat through the megaservice answered
    healthy_reported: dict[str, float] = field(default_factory=dict)  # "healthy in" lines
    healthy_seen: dict[str, float] = field(default_factory=dict)      # our 5 ms prober
    stop_seconds: float = 0.0        # `opea-chat stop` until nothing is left
    peak_rss_mb: dict[str, float] = field(default_factory=dict)

    @property
    def detection_lag_ms(self) -> dict[str, float]:
        return {name: (self.healthy_reported[name] - self.healthy_seen[name]) * 1000
                for name in self.healthy_reported if name in self.healthy_seen}


def _probe(url: str, started: float, seen: dict[str, float], name: str,
           stop: threading.Event) -> None:
    """Record when ``url`` first answers 2xx, polling every 5 ms."""
    with httpx.Client(timeout=1.0, trust_env=False) as http:
        while not stop.is_set():
            try:
                if http.get(url).is_success:
                    seen[name] = time.monotonic() - started
                    return
            except httpx.TransportError:
                pass
            time.sleep(PROBE_INTERVAL)


def _first_answer(url: str, deadline: float) -> None:
    with OpeaClient(url, connect_retries=0, read_timeout=60) as client:
        while True:
            try:
                client.chat("Hi", ChatParams(max_tokens=1, temperature=0.0))
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)


def _vm_hwm_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _container_peak_mb(name: str) -> float:
    """A container's peak memory from its cgroup (v1: max_usage_in_bytes)."""
    import docker

    client = docker.from_env()
    try:
        stats = client.containers.get(name).stats(stream=False)
        usage = stats.get("memory_stats", {})
        return float(usage.get("max_usage") or usage.get("usage") or 0) / 1e6
    finally:
        client.close()


@contextmanager
def bench_home(model: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="opea-chat-bench-") as scratch:
        home = Path(scratch) / "home"
        (home / "models").mkdir(parents=True)
        (home / "models" / model.name).symlink_to(model.resolve())
        yield home


def cli(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True,
                          text=True, timeout=timeout, check=False,
                          env={**os.environ, "OPEA_CHAT_HOME": str(home)})


def _nothing_left(pids: list[int], ports: list[int], docker_client: Any, label: str) -> bool:
    if any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
           for pid in pids):
        return False
    if any(not is_port_free(port) for port in ports):
        return False
    return docker_client is None or not docker_client.containers.list(
        all=True, filters={"label": label})


def _docker_client() -> Any:
    """A client for the leftover check, made before the stop is timed; None without Docker."""
    if not shutil.which("docker"):
        return None
    import docker

    return docker.from_env()


def time_launch(model: Path, runtime: str, extra: tuple[str, ...] = ()) -> LaunchTiming:
    """One `opea-chat launch` from start to an answered chat, then `opea-chat stop`."""
    timing = LaunchTiming(runtime=runtime)
    ports = {name: pick_free_port() for name in SERVICES}
    env = {**os.environ, **{f"OPEA_CHAT_{name.upper()}_PORT": str(port)
                            for name, port in ports.items()}}
    with bench_home(model) as home:
        env["OPEA_CHAT_HOME"] = str(home)
        stop_probing = threading.Event()
        started = time.monotonic()
        launcher = subprocess.Popen(
            [sys.executable, "-m", "launcher", "launch", "--no-browser", "--runtime", runtime,
             *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            start_new_session=True)
        probes = [threading.Thread(target=_probe, daemon=True, args=(
            f"http://127.0.0.1:{ports[name]}{HEALTH[name][runtime]}", started,
            timing.healthy_seen, name, stop_probing)) for name in SERVICES]
        for probe in probes:
            probe.start()
        lines: queue.Queue[tuple[float, str]] = queue.Queue()

        def read() -> None:
            assert launcher.stdout is not None
            for line in launcher.stdout:
                lines.put((time.monotonic() - started, line.rstrip("\n")))

        threading.Thread(target=read, daemon=True).start()
        output: list[str] = []
        try:
            while True:
                at, line = lines.get(timeout=600)
                output.append(line)
                if match := re.match(r"^(\S+) +http://\S+ +healthy in", line):
                    timing.healthy_reported[match.group(1)] = at
                if line.startswith("Ready: "):
                    timing.ready_line = at
                    break
                if line.startswith("Error:"):
                    raise RuntimeError("\n".join(output))
            _first_answer(f"http://127.0.0.1:{ports['megaservice']}", time.monotonic() + 120)
            timing.answered = time.monotonic() - started
            record = read_session(home / "state" / "session.json")
            services = record.services if record is not None else ()
            pids = [launcher.pid] + [s.pid for s in services if isinstance(s, ProcessRecord)]
            timing.peak_rss_mb["launcher"] = _vm_hwm_mb(launcher.pid)
            for service in services:
                if isinstance(service, ProcessRecord):
                    timing.peak_rss_mb[service.name] = _vm_hwm_mb(service.pid)
                else:
                    timing.peak_rss_mb[service.name] = _container_peak_mb(service.container)
            docker_client = _docker_client()
            label = f"{LABEL_HOME}={home_label(home / 'state')}"
            try:
                stop_started = time.monotonic()
                result = cli(home, "stop")
                if result.returncode != 0:
                    raise RuntimeError(result.stdout + result.stderr)
                while not _nothing_left(pids, list(ports.values()), docker_client, label):
                    if time.monotonic() - stop_started > 120:
                        raise RuntimeError("something was left after opea-chat stop")
                    time.sleep(0.02)
                timing.stop_seconds = time.monotonic() - stop_started
            finally:
                if docker_client is not None:
                    docker_client.close()
        finally:
            stop_probing.set()
            if launcher.poll() is None:
                launcher.terminate()
            launcher.wait(60)
            cli(home, "stop")
    return timing


@dataclass
class ComposeTiming:
    up_returned: float = 0.0
    answered: float = 0.0
    down_seconds: float = 0.0


def ensure_app_image(base: str) -> str:
    """The app's image, built from the project's Dockerfile on ``base`` when missing."""
    import docker
    import docker.errors

    from launcher import __version__

    tag = f"opea-chat/app:{__version__}"
    client = docker.from_env()
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        root = Path(__file__).resolve().parent.parent
        client.images.build(path=str(root), tag=tag, rm=True, forcerm=True,
                            buildargs={"BASE": base, "PIP_OPTIONS": "--no-index"})
    finally:
        client.close()
    return tag


def time_compose(model: Path, project: str = "opea-chat-bench") -> ComposeTiming:
    """`docker-compose up` of `opea-chat export compose` (same images, healthchecks and
    depends_on: service_healthy, as OPEA's compose files do) until a chat is answered."""
    timing = ComposeTiming()
    ports = {name: pick_free_port() for name in SERVICES}
    with bench_home(model) as home:
        compose = home / "compose.yaml"
        result = cli(home, "export", "compose", "--runtime", "docker", "--gpus", "none",
                     "-o", str(compose), *(f"--{name}-port={port}" for name, port in
                                           ports.items()))
        if result.returncode != 0:
            raise RuntimeError(result.stderr)
        base = ["docker-compose", "-p", project, "-f", str(compose)]
        started = time.monotonic()
        try:
            subprocess.run([*base, "up", "-d"], check=True, capture_output=True, text=True)
            timing.up_returned = time.monotonic() - started
            _first_answer(f"http://127.0.0.1:{ports['megaservice']}", time.monotonic() + 300)
            timing.answered = time.monotonic() - started
        finally:
            down = time.monotonic()
            subprocess.run([*base, "down", "--remove-orphans"], check=False,
                           capture_output=True, text=True)
            timing.down_seconds = time.monotonic() - down
    return timing


def summary(values: list[Any]) -> dict[str, float]:
    import statistics

    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": len(values)}


def main() -> int:
    """`python -m bench.launches MODEL [--runs N] [--runtime R]`: launch-to-Ready, each
    service's "healthy in", the first answer and `opea-chat stop`, run by run."""
    import argparse
    import statistics

    parser = argparse.ArgumentParser(prog="python -m bench.launches")
    parser.add_argument("model", type=Path, help="a GGUF file (SmolLM2-135M for the targets)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--runtime", default="local", choices=("local", "docker"))
    args = parser.parse_args()
    timings = []
    for run in range(1, args.runs + 1):
        timing = time_launch(args.model, args.runtime)
        timings.append(timing)
        healthy = ", ".join(f"{name} {seconds:.2f}"
                            for name, seconds in sorted(timing.healthy_reported.items(),
                                                        key=lambda item: item[1]))
        print(f"run {run}: Ready {timing.ready_line:.2f} s (healthy at: {healthy}); "
              f"first answer {timing.answered:.2f} s; stop {timing.stop_seconds:.2f} s",
              flush=True)
    for what, values in (("Ready", [t.ready_line for t in timings]),
                         ("first answer", [t.answered for t in timings]),
                         ("stop", [t.stop_seconds for t in timings])):
        print(f"{args.runtime} {what}: median {statistics.median(values):.2f} s "
              f"(min {min(values):.2f}, max {max(values):.2f}, {len(values)} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
