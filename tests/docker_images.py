"""Building the test images (see tests/images/README.md) on the real engine.

Each image carries a label with the hash of what it was built from; an image whose inputs
have not changed is reused, so only the first run on a machine pays for the builds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import docker
import docker.errors
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from opea.stack import LLAMA_CPP_BUILD, OPEA_RELEASE

ROOT = Path(__file__).resolve().parent.parent
IMAGES = Path(__file__).resolve().parent / "images"
CACHE = ROOT / ".cache" / "test-images"
INPUTS_LABEL = "org.opea-chat.test-inputs"

# Every test image has a name of its own, never a real image's: the engine the tests find
# may be a developer's, holding the real llama.cpp or OPEA images. The launcher is pointed at
# the stand-ins through its images setting (STAND_INS).
BASE = "opea-chat-test/debian:bookworm"
PYTHON = "opea-chat-test/python:bookworm"
# Names of their own (never a real image's tag, which a developer's engine may hold), with the
# pinned tags, so a registry mirror of them is found under the tag a launch asks for.
LLAMA_SERVER = f"opea-chat-test/llama.cpp:server-{LLAMA_CPP_BUILD}"
LLAMA_SERVER_CUDA = f"opea-chat-test/llama.cpp:server-cuda-{LLAMA_CPP_BUILD}"
CHATQNA = f"opea-chat-test/chatqna:{OPEA_RELEASE}"
NEVER_READY = "opea-chat-test/never-ready:latest"
# The images setting, as environment variables, that makes the chat profile use them.
STAND_INS = {"OPEA_CHAT_IMAGE_LLM": LLAMA_SERVER, "OPEA_CHAT_IMAGE_MEGASERVICE": CHATQNA}
# What the stand-ins need inside: the megaservice, the LLM server and the app.
ROOT_REQUIREMENTS = ("opea-comps", "llama-cpp-python", "streamlit", "httpx", "platformdirs",
                     "uvicorn", "fastapi", "sse-starlette", "starlette-context",
                     "pydantic-settings", "PyYAML")
BASE_PACKAGES = "python3,python3-venv,ca-certificates,curl,libgomp1"
# Debian bookworm's Python, for the environment markers of the image's requirements.
IMAGE_PYTHON = {**{k: str(v) for k, v in default_environment().items()},
                "python_version": "3.11", "python_full_version": "3.11.2"}


def _wheelhouse() -> Path:
    """Where scripts/build-llama.sh keeps the llama-cpp-python wheel (outside the checkout)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("OPEA_CHAT_WHEELHOUSE") or Path(cache) / "opea-chat" / "wheelhouse")


def say(text: str) -> None:
    print(f"[test images] {text}", file=sys.stderr, flush=True)


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()[:16]


def _folder_digest(folder: Path) -> bytes:
    return b"".join(path.name.encode() + path.read_bytes()
                    for path in sorted(folder.rglob("*")) if path.is_file())


def _current(client: docker.DockerClient, tag: str, inputs: str) -> bool:
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return bool((image.labels or {}).get(INPUTS_LABEL) == inputs)


def pinned_requirements() -> list[str]:
    """The installed versions of everything the stand-ins import, dependencies included.

    A dependency this host skips by its marker (the image's Python is 3.11.2, the host's may
    be newer) is taken with the version its dependant asks for."""
    pins: dict[str, str] = {}
    not_here: dict[str, SpecifierSet] = {}

    def visit(requirement: Requirement) -> None:
        key = canonicalize_name(requirement.name)
        if key in pins:
            return
        try:
            dist = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            not_here[key] = not_here.get(key, SpecifierSet()) & requirement.specifier
            return
        pins[key] = f"{dist.metadata['Name']}=={dist.version}"
        for text in dist.requires or []:
            needed = Requirement(text)
            if needed.marker is None or any(
                    needed.marker.evaluate({**IMAGE_PYTHON, "extra": extra})
                    for extra in ("", "server")):
                visit(needed)

    for name in ROOT_REQUIREMENTS:
        visit(Requirement(name))
    pins.update({name: f"{name}{specifier}" for name, specifier in not_here.items()})
    return sorted(pins.values(), key=str.lower)


def build_base(client: docker.DockerClient) -> None:
    inputs = _digest(BASE_PACKAGES.encode())
    if _current(client, BASE, inputs):
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    rootfs = CACHE / "rootfs.tar"
    say("building a Debian bookworm root filesystem with mmdebstrap (about a minute)")
    subprocess.run(["mmdebstrap", "--quiet", "--variant=apt", f"--include={BASE_PACKAGES}",
                    "bookworm", str(rootfs)], check=True)
    say(f"importing it as {BASE}")
    client.api.import_image(src=str(rootfs), repository=BASE.split(":")[0],
                            tag=BASE.split(":")[1],
                            changes=[f"LABEL {INPUTS_LABEL}={inputs}",
                                     'CMD ["/bin/bash"]'])
    rootfs.unlink()


def build_python(client: docker.DockerClient) -> None:
    requirements = "\n".join(pinned_requirements()) + "\n"
    inputs = _digest(requirements.encode(), (IMAGES / "python" / "Dockerfile").read_bytes(),
                     client.images.get(BASE).id.encode())
    if _current(client, PYTHON, inputs):
        return
    context = CACHE / "python"
    shutil.rmtree(context, ignore_errors=True)
    wheels = context / "wheels"
    wheels.mkdir(parents=True)
    (wheels / "requirements.txt").write_text(requirements)
    say(f"collecting {requirements.count(chr(10))} wheels for {PYTHON}")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "--find-links", str(_wheelhouse()),
                    "-w", str(wheels), "-r", str(wheels / "requirements.txt")], check=True)
    shutil.copy(IMAGES / "python" / "Dockerfile", context / "Dockerfile")
    say(f"building {PYTHON} (a few minutes)")
    _build(client, context, PYTHON, inputs)
    shutil.rmtree(context, ignore_errors=True)


def _build(client: docker.DockerClient, context: Path, tag: str, inputs: str) -> None:
    try:
        client.images.build(path=str(context), tag=tag, rm=True, forcerm=True,
                            labels={INPUTS_LABEL: inputs})
    except docker.errors.BuildError as error:
        log = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in error.build_log)
        raise RuntimeError(f"building {tag} failed:\n{log[-4000:]}") from error


def build_from_folder(client: docker.DockerClient, folder: str, tags: list[str]) -> None:
    context = IMAGES / folder
    base_inputs = client.images.get(PYTHON if folder != "never-ready" else BASE).id
    inputs = _digest(_folder_digest(context), base_inputs.encode())
    if all(_current(client, tag, inputs) for tag in tags):
        return
    say(f"building {', '.join(tags)}")
    _build(client, context, tags[0], inputs)
    image = client.images.get(tags[0])
    for tag in tags[1:]:
        repository, _, name = tag.rpartition(":")
        image.tag(repository, name)


def build_all(client: docker.DockerClient) -> None:
    build_base(client)
    build_python(client)
    build_from_folder(client, "llama-server", [LLAMA_SERVER, LLAMA_SERVER_CUDA])
    build_from_folder(client, "chatqna", [CHATQNA])
    build_from_folder(client, "never-ready", [NEVER_READY])
