"""Fixtures for tests against the real Docker engine: the client, the test images, and a
local registry on 127.0.0.1 (Debian's `docker-registry`) so that pulls are real."""

from __future__ import annotations

import io
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from launcher.docker_engine import connect
from launcher.errors import DockerUnavailableError
from launcher.ports import pick_free_port
from launcher.processes import start_child, stop_child
from tests.docker_images import STAND_INS, build_all

REGISTRY_BINARY = "/usr/bin/docker-registry"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = connect()
    except DockerUnavailableError as error:
        pytest.fail(f"{error}; scripts/test.sh installs and starts Debian's engine")
    yield client
    client.close()


@pytest.fixture(scope="session")
def built_test_images(docker_client: docker.DockerClient) -> None:
    build_all(docker_client)


@pytest.fixture
def test_images(built_test_images: None, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in images, and the images setting that points the launcher at them (set
    after ``home`` has cleared every OPEA_CHAT_* variable; a test may set its own)."""
    for variable, image in STAND_INS.items():
        monkeypatch.setenv(variable, image)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry on 127.0.0.1 (Docker pulls from loopback registries over plain HTTP)."""
    folder = tmp_path_factory.mktemp("registry")
    port = pick_free_port()
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    child = start_child("registry", [REGISTRY_BINARY, "serve", str(config)],
                        folder / "registry.log", {"PATH": "/usr/bin:/bin"})
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if child.exit_code() is not None:
                pytest.fail(f"the registry exited: {(folder / 'registry.log').read_text()}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        stop_child(child)


def push_fresh(client: docker.DockerClient, image: str, registry: str,
               path: str | None = None) -> str:
    """Put a variant of ``image`` with one layer of its own into the registry (as ``path``,
    by default the image's own repository) and remove it locally, so that a pull really
    downloads (that layer) and reuses the rest. Returns the registry's reference."""
    repository, _, tag = image.rpartition(":")
    target = f"{registry}/{path or repository}"
    dockerfile = f"FROM {image}\nRUN head -c 300000 /dev/urandom > /tmp/pull-test\n"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=f"{target}:{tag}",
                        rm=True, forcerm=True)
    for event in client.images.push(target, tag=tag, stream=True, decode=True):
        if "error" in event:
            raise RuntimeError(f"push of {target}:{tag} failed: {event['error']}")
    client.images.remove(f"{target}:{tag}")
    return f"{target}:{tag}"


def managed(client: docker.DockerClient, home: Path) -> tuple[list[str], list[str]]:
    """Names of the containers and networks that launches in ``home`` started."""
    from launcher.docker_plan import LABEL_HOME, home_label

    label = f"{LABEL_HOME}={home_label(home / 'state')}"
    containers = [c.name for c in client.containers.list(all=True, filters={"label": label})]
    networks = [n.name for n in client.networks.list(filters={"label": label})]
    return containers, networks


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False)
