"""Which runtime `--runtime auto` picks, and why: pure, so doctor and launch agree."""

from __future__ import annotations

from dataclasses import dataclass

from launcher.gpu import GpuReport


@dataclass(frozen=True)
class Machine:
    """What the probes found: the Docker engine, its NVIDIA runtime, the GPUs."""

    docker_problem: str | None  # None: the engine answered
    nvidia_runtime: bool
    gpus: GpuReport


def choose_runtime(requested: str, machine: Machine | None) -> tuple[str, str]:
    """(runtime, reason). ``machine`` is only needed, and only probed, for ``auto``."""
    if requested != "auto":
        return requested, f"--runtime {requested} was asked for"
    assert machine is not None
    if machine.docker_problem is not None:
        return "local", f"Docker is not usable ({machine.docker_problem})"
    if not machine.gpus.usable:
        return "local", f"no usable NVIDIA GPU ({machine.gpus.problem})"
    if not machine.nvidia_runtime:
        return "local", "Docker has no NVIDIA runtime (NVIDIA Container Toolkit not set up)"
    names = ", ".join(gpu.name for gpu in machine.gpus.gpus)
    return "docker", f"Docker with the NVIDIA runtime and {names}"

