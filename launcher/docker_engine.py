"""Reaching the Docker engine, and what it can do for GPUs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import docker.errors

from launcher.errors import DockerUnavailableError

CDI_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))


def connect(timeout: float = 10.0) -> docker.DockerClient:
    """A client whose engine answered a ping, or a clear error."""
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as error:
        raise DockerUnavailableError(
            f"cannot reach the Docker engine ({_reason(error)})",
            hint="start Docker (e.g. `sudo systemctl start docker`), or use --runtime local",
        ) from error
    return client


def _reason(error: Exception) -> str:
    text = str(error)
    if "FileNotFoundError" in text or "No such file" in text:
        return "no Docker socket: is Docker installed and running?"
    if "PermissionError" in text or "Permission denied" in text:
        return "permission denied on the Docker socket: add yourself to the docker group"
    return text.split("\n")[0][:200]


def nvidia_runtime_available(client: docker.DockerClient) -> bool:
    """The NVIDIA Container Toolkit is set up for this engine: an `nvidia` runtime is
    registered, or NVIDIA CDI specs exist (newer toolkits)."""
    info: dict[str, Any] = client.info()
    return "nvidia" in (info.get("Runtimes") or {}) or bool(nvidia_cdi_specs())


def nvidia_cdi_specs(dirs: tuple[Path, ...] = CDI_DIRS) -> list[Path]:
    specs = []
    for folder in dirs:
        if folder.is_dir():
            specs += [path for path in folder.iterdir()
                      if path.suffix in (".yaml", ".json") and "nvidia" in path.name.lower()]
    return specs
