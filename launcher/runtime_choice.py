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


def probe_machine() -> Machine:
    from launcher.docker_engine import connect, nvidia_runtime_available
    from launcher.errors import DockerUnavailableError
    from launcher.gpu import probe_gpus

    gpus = probe_gpus()
    try:
        client = connect(timeout=3)
    except DockerUnavailableError as error:
        return Machine(docker_problem=error.message, nvidia_runtime=False, gpus=gpus)
    try:
        return Machine(docker_problem=None, nvidia_runtime=nvidia_runtime_available(client),
                       gpus=gpus)
    finally:
        client.close()
