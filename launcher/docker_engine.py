"""Reaching the Docker engine, and what it can do for GPUs.

docker-py is imported only when the engine is asked something: a broken or missing Docker
SDK must not break commands that never talk to Docker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.errors import DockerUnavailableError

if TYPE_CHECKING:
    import docker
    import docker.errors

CDI_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))
START_HINT = "start Docker (e.g. `sudo systemctl start docker`), or use --runtime local"


def connect(timeout: float = 10.0) -> docker.DockerClient:
    """A client whose engine answered a ping, or a clear error."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=max(1, round(timeout)))
        client.ping()
    except docker.errors.DockerException as error:
        raise DockerUnavailableError(
            f"cannot reach the Docker engine ({_reason(error)})", hint=START_HINT,
        ) from error
    return client


def _reason(error: Exception) -> str:
    text = str(error)
    if "FileNotFoundError" in text or "No such file" in text:
        return "no Docker socket: is Docker installed and running?"
    if "ConnectionRefused" in text or "Connection refused" in text:
        return "nothing answers on the Docker socket: is Docker running?"
    if "PermissionError" in text or "Permission denied" in text:
        return "permission denied on the Docker socket: add yourself to the docker group"
    if "timed out" in text.lower():
        return "the Docker engine did not answer in time"
    return text.split("\n")[0][:200]


@dataclass(frozen=True)
class DockerFacts:
    """What the engine told us; ``problem`` is set when it could not be reached."""

    problem: str | None = None
    version: str | None = None
    api_version: str | None = None
    runtimes: tuple[str, ...] = ()
    cdi_specs: tuple[Path, ...] = ()
    # Where the engine keeps images, when the engine runs on this machine.
    root_dir: Path | None = None

    @property
    def reachable(self) -> bool:
        return self.problem is None

    @property
    def nvidia_runtime(self) -> bool:
        return "nvidia" in self.runtimes or bool(self.cdi_specs)


def engine_is_local(client: docker.DockerClient) -> bool:
    """A unix socket means the engine's folders are on this machine's disks."""
    host = os.environ.get("DOCKER_HOST", "")
    return not host or host.startswith("unix://") or \
        str(client.api.base_url).startswith("http+docker://localhost")


def local_root_dir(client: docker.DockerClient, info: dict[str, Any] | None = None) \
        -> Path | None:
    if not engine_is_local(client):
        return None
    root = (info if info is not None else client.info()).get("DockerRootDir")
    return Path(root) if root else None


def probe_docker(timeout: float) -> tuple[DockerFacts, docker.DockerClient | None]:
    """The engine's version, runtimes and image folder; never raises for an engine that is
    missing, stopped or slow (the client's own timeout bounds each request)."""
    import docker.errors

    try:
        client = connect(timeout)
    except DockerUnavailableError as error:
        return DockerFacts(problem=error.message), None
    try:
        version: dict[str, Any] = client.version()
        info: dict[str, Any] = client.info()
    except (docker.errors.DockerException, OSError) as error:
        client.close()
        return DockerFacts(problem=f"the Docker engine failed to answer ({_reason(error)})"), \
            None
    return DockerFacts(
        version=str(version.get("Version", "unknown")),
        api_version=str(version.get("ApiVersion", "unknown")),
        runtimes=tuple(sorted(info.get("Runtimes") or {})),
        cdi_specs=tuple(nvidia_cdi_specs()),
        root_dir=local_root_dir(client, info),
    ), client


def gpu_request_refused(error: docker.errors.APIError) -> bool:
    """Whether Docker refused a container's GPU request: no NVIDIA runtime to give it."""
    return "could not select device driver" in str(error.explanation or error).lower()


def nvidia_runtime_available(client: docker.DockerClient) -> bool:
    """The NVIDIA Container Toolkit is set up for this engine: an `nvidia` runtime is
    registered, or NVIDIA CDI specs exist (newer toolkits)."""
    info: dict[str, Any] = client.info()
    return DockerFacts(runtimes=tuple(info.get("Runtimes") or {}),
                       cdi_specs=tuple(nvidia_cdi_specs())).nvidia_runtime


def nvidia_cdi_specs(dirs: tuple[Path, ...] = CDI_DIRS) -> list[Path]:
    specs = []
    for folder in dirs:
        if folder.is_dir():
            specs += [path for path in folder.iterdir()
                      if path.suffix in (".yaml", ".json") and "nvidia" in path.name.lower()]
    return specs
