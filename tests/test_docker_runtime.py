"""The docker runtime against the real engine (no mock of docker-py): images pulled from a
local registry with progress, the chat profile answering through the OPEA client, and
every failure path leaving no container, network or port behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import httpx
import pytest

from launcher.control import ControlClient
from launcher.docker_runtime import DockerRuntime
from launcher.errors import GpuUnavailableError
from launcher.gpu import Gpu, GpuReport
from launcher.paths import resolve_paths
from launcher.plan import plan_stack
from launcher.ports import is_port_free, pick_free_port
from launcher.session_file import read_session
from launcher.settings import load_settings
from models.store import resolve_model
from opea.client import ChatParams, OpeaClient
from tests.browser import ChatPage, chromium, screenshot
from tests.docker_fixtures import managed, push_fresh
from tests.docker_images import (
    BASE,
    CHATQNA,
    LLAMA_SERVER,
    NEVER_READY,
    PYTHON,
)
from tests.launched import Launched
from tests.model_files import unknown_architecture_gguf

pytestmark = [pytest.mark.integration, pytest.mark.docker]
READY = r"^Ready: (http://127\.0\.0\.1:\d+)$"
# Local images by their stand-in names; CPU only (this engine has no NVIDIA runtime).
DOCKER_CPU = ["--runtime", "docker", "--gpus", "none", "--no-browser"]
LaunchFactory = Callable[..., Launched]


@pytest.fixture
def launch(home_with_model: Path, test_images: None,
           docker_client: docker.DockerClient) -> Iterator[LaunchFactory]:
    started: list[Launched] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Launched:
        started.append(Launched(list(args), home_with_model, env))
        return started[-1]

    yield start
    for launched in started:
        launched.cleanup()
    subprocess.run([sys.executable, "-m", "launcher", "stop"], capture_output=True,
                   env={**os.environ, "OPEA_CHAT_HOME": str(home_with_model)}, check=False)


def assert_nothing_left(client: docker.DockerClient, launched: Launched,
                        ports: list[int]) -> None:
    assert managed(client, launched.home) == ([], [])
    assert launched.survivors() == []
    assert [port for port in ports if not is_port_free(port)] == []


def ports_of(launched: Launched) -> list[int]:
    return [int(url.rsplit(":", 1)[1]) for url in launched.session()["urls"].values()]


def test_chat_profile_pulled_from_a_registry_answers_and_stops_clean(
        launch: LaunchFactory, docker_client: docker.DockerClient, registry: str) -> None:
    llm_image = push_fresh(docker_client, LLAMA_SERVER, registry)
    # Under OPEA's path, in this test's own registry: the registry setting finds it there.
    chatqna_image = push_fresh(docker_client, CHATQNA, registry, path="opea/chatqna")
    try:
        pulled_and_answered(launch, docker_client, registry, llm_image, chatqna_image)
    finally:  # what this test pulled goes again (the stand-ins it was made from stay)
        for image in (llm_image, chatqna_image):
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(image, force=True)


def pulled_and_answered(launch: LaunchFactory, docker_client: docker.DockerClient,
                        registry: str, llm_image: str, chatqna_image: str) -> None:
    # OPEA's REGISTRY replaces the `opea` namespace: the mirror keeps it in its path.
    launched = launch(*DOCKER_CPU, env={"OPEA_CHAT_REGISTRY": f"{registry}/opea",
                                        "OPEA_CHAT_IMAGE_LLM": llm_image,
                                        "OPEA_CHAT_IMAGE_MEGASERVICE": ""})  # unset
    launched.expect(READY)
    pulling = launched.expect(r"^Pulling 2 image\(s\), up to ([\d.,]+) MB to download: (.*)$")
    assert float(pulling.group(1)) > 500  # the sizes came from the registry's manifests
    assert f"{llm_image} (" in pulling.group(2) and f"{chatqna_image} (" in pulling.group(2)
    for image in (llm_image, chatqna_image):
        assert re.search(rf"^pulled {re.escape(image)}: 30\d\.\d kB downloaded in 1 new "
                         r"layer\(s\), \d+ already here", launched.output, re.MULTILINE), \
            launched.output
    assert "Runtime: docker (--runtime docker was asked for)" in launched.output

    containers, networks = managed(docker_client, launched.home)
    assert len(containers) == 2 and len(networks) == 1
    for name in containers:
        attrs = docker_client.containers.get(name).attrs
        bindings = [b for published in attrs["NetworkSettings"]["Ports"].values()
                    for b in published or []]
        assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings)
        assert all(not m["RW"] for m in attrs["Mounts"])  # models and code: read-only
        assert attrs["HostConfig"]["DeviceRequests"] is None  # --gpus none

    urls = launched.session()["urls"]
    with OpeaClient(urls["megaservice"]) as client:
        answer = "".join(client.chat_stream("What is the capital of France?",
                                            ChatParams(max_tokens=24)))
    assert answer.strip()
    assert httpx.get(urls["app"], timeout=10).status_code == 200

    ports = ports_of(launched)
    launched.signal(signal.SIGINT)
    assert launched.wait() == 0, launched.output
    assert_nothing_left(docker_client, launched, ports)


def test_a_gpu_request_on_an_engine_without_nvidia_names_the_toolkit(
        home_with_model: Path, test_images: None, docker_client: docker.DockerClient) -> None:
    # NVML is faked to show a GPU (none here); the engine's refusal is real.
    paths = resolve_paths()
    settings = load_settings(paths, {}, flags={"runtime": "docker",
                                               "images": {"llm": BASE}})
    model = resolve_model("smollm2-135m", paths.models_dir)
    plan = plan_stack(settings, model, is_port_free, pick_free_port, runtime="docker")
    h200 = Gpu(0, "NVIDIA H200", (9, 0), 141 << 30, 140 << 30)
    runtime = DockerRuntime(settings, paths, docker_client, GpuReport(gpus=(h200,)))
    runtime.plan_containers(plan)
    try:
        with pytest.raises(GpuUnavailableError) as caught:
            runtime.start(plan.service("llm"), plan)
        assert "NVIDIA Container Toolkit is missing or not configured" in str(caught.value)
        assert "could not select device driver" in str(caught.value)
        created = managed(docker_client, home_with_model)[0]
        assert created == [f"opea-chat-{runtime.session}-llm"]  # created, never started
    finally:
        runtime.stop_all()
    assert managed(docker_client, home_with_model) == ([], [])


def test_launch_with_a_gpu_stack_and_no_gpu_refuses_before_pulling(
        launch: LaunchFactory, docker_client: docker.DockerClient) -> None:
    launched = launch("--runtime", "docker", "--no-browser", "--pull", "always")
    assert launched.wait() == 1
    assert re.search(r"^Error: the llm service needs an NVIDIA GPU, but none is usable: .+; "
                     r"install the NVIDIA driver, or run on the CPU with --gpus none",
                     launched.output, re.MULTILINE), launched.output
    assert "Pulling" not in launched.output
    assert managed(docker_client, launched.home) == ([], [])


def test_a_service_that_never_becomes_healthy_times_out_with_its_log(
        launch: LaunchFactory, docker_client: docker.DockerClient) -> None:
    launched = launch(*DOCKER_CPU, "--pull", "never", env={
        "OPEA_CHAT_IMAGE_LLM": NEVER_READY, "OPEA_CHAT_LLM_START_TIMEOUT": "4"})
    assert launched.wait(timeout=120) == 1, launched.output
    assert re.search(r"^Error: the llm service was not healthy at http://127\.0\.0\.1:\d+/health "
                     r"after 4 s; raise llm_start_timeout, or see `docker logs opea-chat-\w+-llm`",
                     launched.output, re.MULTILINE), launched.output
    assert "loading model (this one never finishes)" in launched.output
    assert_nothing_left(docker_client, launched, [])


def test_a_container_that_exits_while_starting_fails_fast(
        launch: LaunchFactory, docker_client: docker.DockerClient, home_with_model: Path) -> None:
    # A whole GGUF file (it passes the checks before launch) that llama.cpp cannot load.
    unknown_architecture_gguf(home_with_model / "models" / "broken.gguf")
    launched = launch(*DOCKER_CPU, "--model", "broken", "--pull", "never",
                      env={"OPEA_CHAT_LLM_START_TIMEOUT": "600"})
    assert launched.wait(timeout=120) == 1, launched.output
    assert re.search(r"^Error: the llm service exited with code 1 while starting; see "
                     r"`docker logs opea-chat-\w+-llm`", launched.output, re.MULTILINE), \
        launched.output
    assert "Failed to load model" in launched.output  # the container's own log
    assert "was not healthy" not in launched.output
    assert_nothing_left(docker_client, launched, [])


def test_after_sigkill_stop_and_the_next_launch_clean_up_by_label(
        launch: LaunchFactory, docker_client: docker.DockerClient) -> None:
    first = launch(*DOCKER_CPU, "--pull", "never")
    first.expect(READY)
    ports = ports_of(first)
    first.signal(signal.SIGKILL)
    first.wait()
    assert len(managed(docker_client, first.home)[0]) == 2  # the launcher left them running

    second = launch(*DOCKER_CPU, "--pull", "never")
    second.expect(READY)
    assert re.search(r"^Removed what an earlier launcher left running: .*opea-chat-\w+-llm",
                     second.output, re.MULTILINE), second.output
    second.signal(signal.SIGKILL)
    second.wait()

    stop = subprocess.run([sys.executable, "-m", "launcher", "stop"], capture_output=True,
                          text=True, env={**os.environ, "OPEA_CHAT_HOME": str(second.home)},
                          check=False, timeout=120)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "Removed what was left:" in stop.stdout and "app (PID" in stop.stdout
    assert_nothing_left(docker_client, second, ports)

    again = subprocess.run([sys.executable, "-m", "launcher", "stop"], capture_output=True,
                           text=True, env={**os.environ, "OPEA_CHAT_HOME": str(second.home)},
                           check=False)
    assert (again.returncode, again.stdout.strip()) == (0, "Nothing was running.")


def test_stop_from_another_shell_ends_a_running_launcher(
        launch: LaunchFactory, docker_client: docker.DockerClient) -> None:
    launched = launch(*DOCKER_CPU, "--pull", "never")
    launched.expect(READY)
    ports = ports_of(launched)
    stop = subprocess.run([sys.executable, "-m", "launcher", "stop"], capture_output=True,
                          text=True, env={**os.environ, "OPEA_CHAT_HOME": str(launched.home)},
                          check=False, timeout=120)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "Stopping the launcher (PID" in stop.stdout
    assert launched.wait() == 0
    assert "Stopping (opea-chat stop)" in launched.output
    assert_nothing_left(docker_client, launched, ports)


def test_an_explicit_host_port_that_is_taken_fails_before_any_container(
        launch: LaunchFactory, docker_client: docker.DockerClient) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        launched = launch(*DOCKER_CPU, "--llm-port", str(port))
        assert launched.wait() == 1
    assert f"Error: port {port} for the llm service is already in use (llm_port, from flag " \
           "--llm-port)" in launched.output
    assert managed(docker_client, launched.home) == ([], [])


def test_export_compose_validates_and_the_app_image_runs(
        home_with_model: Path, test_images: None, docker_client: docker.DockerClient,
        tmp_path: Path) -> None:
    for profile in ("chat", "rag"):
        exported = tmp_path / f"{profile}.yaml"
        result = subprocess.run(
            [sys.executable, "-m", "launcher", "export", "compose", "--profile", profile,
             "-o", str(exported)], capture_output=True, text=True, check=False,
            env={**os.environ, "OPEA_CHAT_HOME": str(home_with_model)})
        assert result.returncode == 0, result.stderr
        check = subprocess.run(["docker-compose", "-f", str(exported), "config"],
                               capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr
        assert "0.0.0.0:" not in check.stdout

    root = Path(__file__).resolve().parent.parent
    tag = "opea-chat-test/app:latest"
    docker_client.images.build(path=str(root), tag=tag, rm=True, forcerm=True,
                               buildargs={"BASE": PYTHON, "PIP_OPTIONS": "--no-index"})
    container = docker_client.containers.run(
        tag, detach=True, ports={"8501/tcp": ("127.0.0.1", None)},
        labels={"org.opea-chat.test": "app-image"})
    try:
        container.reload()
        port = int(container.attrs["NetworkSettings"]["Ports"]["8501/tcp"][0]["HostPort"])
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).is_success:
                    break
            except httpx.TransportError:
                pass
            container.reload()
            assert container.status == "running", container.logs().decode()[-2000:]
            time.sleep(0.2)
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "<title>" in page.text
        assert container.attrs["Config"]["User"] == "chat"
        with chromium() as browser:  # the page's own imports work inside the image
            chat = ChatPage(browser.new_page(), f"http://127.0.0.1:{port}").open()
            chat.page.get_by_role("heading", name="What can I help with?").wait_for()
            assert chat.page.get_by_test_id("stException").count() == 0
            screenshot(chat.page, "30-app-image")
    finally:
        container.remove(force=True)


def test_a_docker_session_from_another_shell_and_from_the_app(
        launch: LaunchFactory, docker_client: docker.DockerClient, smollm2: Path,
        home_with_model: Path) -> None:
    """status, logs, a model switch and Quit, with containers instead of processes."""
    shutil.copy(smollm2, home_with_model / "models" / "second.gguf")
    launched = launch(*DOCKER_CPU, "--pull", "never")
    app_url = launched.expect(READY).group(1)
    home = launched.home
    env = {**os.environ, "OPEA_CHAT_HOME": str(home)}

    status = json.loads(subprocess.run([sys.executable, "-m", "launcher", "status", "--json"],
                                       capture_output=True, text=True, env=env,
                                       check=True).stdout)
    assert status["runtime"] == "docker" and status["device"].startswith("CPU")
    by_name = {s["name"]: s for s in status["services"]}
    assert all(s["healthy"] for s in status["services"])
    assert by_name["llm"]["container"].startswith("opea-chat-") and "pid" in by_name["app"]
    logs = subprocess.run([sys.executable, "-m", "launcher", "logs", "llm", "-n", "100"],
                          capture_output=True, text=True, env=env, check=True).stdout
    assert "Uvicorn running on http://0.0.0.0:8080" in logs  # the container's own log

    client = ControlClient.from_session(read_session(launched.home / "state" / "session.json"))
    assert client is not None
    try:
        assert client.switch_model("second", timeout=300).changed
    finally:
        client.close()
    after = {s["name"]: s for s in launched.session()["services"]}
    assert after["llm"]["id"] != by_name["llm"]["id"]
    assert after["megaservice"]["id"] == by_name["megaservice"]["id"]
    assert len(managed(docker_client, home)[0]) == 2  # the old LLM container is gone
    ports = ports_of(launched)

    with chromium() as browser:
        page = ChatPage(browser.new_page(), app_url).open()
        page.send("Name a colour.")
        assert page.wait_for_answer().strip()
        screenshot(page.page, "31-docker-answer")
        page.ask_to_quit().get_by_role("button", name="Quit", exact=True).click()
        page.page.get_by_text("opea-chat has stopped").wait_for(timeout=30_000)
    assert launched.wait() == 0
    assert "Stopping (Quit in the app)" in launched.output
    assert_nothing_left(docker_client, launched, ports)
    saved = (home / "logs" / "llm.log").read_text()
    assert "=== container opea-chat-" in saved and "loading model /models/second.gguf" in saved

