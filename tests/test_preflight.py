"""`launch` runs doctor's checks first and stops before any download or start when one would
doom it, with the same finding and fix doctor shows: a corrupt model, a model too large for
the memory it would run in, no NVIDIA runtime for a GPU stack, a disk too small."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import psutil
import pynvml
import pytest
from pytest_mock import MockerFixture

from launcher.cli import main
from tests.docker_fixtures import managed
from tests.model_files import truncated_copy
from tests.nvml import GIB, H200, FakeGpu, fake_nvml, nvml_fails
from tests.test_doctor import doctor

# SmolLM2's KV cache per token: keys and values, 30 layers, 3 KV heads of 64, 16-bit.
SMOLLM2_KV_PER_TOKEN = 2 * 30 * 3 * 64 * 2


def launch(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `launch` and check that it started nothing: no process (beyond what this test
    session already runs, such as its registry), no session file, no service log."""
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    code = main(["launch", "--no-browser", *args])
    captured = capsys.readouterr()
    assert {child.pid for child in psutil.Process().children(recursive=True)} <= before
    home = Path(os.environ["OPEA_CHAT_HOME"])
    assert not (home / "state" / "session.json").exists()
    assert not (home / "logs").exists()
    return code, captured.out, captured.err


@pytest.fixture
def no_docker(mocker: MockerFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml_fails(mocker, pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")


def test_a_corrupt_model_stops_launch_with_doctors_words(
        home_with_model: Path, smollm2: Path, no_docker: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    truncated_copy(smollm2, home_with_model / "models" / "cut.gguf", 40_000_000)
    _, checks, _ = doctor(capsys, "--model", "cut")
    finding = checks["model cut"]
    assert finding["status"] == "fail"
    code, out, err = launch(capsys, "--model", "cut")
    assert code == 1
    assert err == f"Error: {finding['detail']}; {finding['fix']}\n"
    assert "Traceback" not in out + err


def test_a_context_too_large_for_ram_stops_launch(
        home_with_model: Path, no_docker: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # A KV cache twice the size of this machine's memory, whatever the machine.
    context = psutil.virtual_memory().total * 2 // SMOLLM2_KV_PER_TOKEN // 256 * 256
    monkeypatch.setenv("OPEA_CHAT_CONTEXT_SIZE", str(context))
    _, checks, _ = doctor(capsys)
    finding = checks["fit smollm2-135m"]
    assert finding["status"] == "fail"
    code, _, err = launch(capsys)
    assert code == 1
    # The free RAM moves between the two runs; the finding's words do not.
    prefix = finding["detail"].split(", more than the ")[0]
    assert err.startswith(f"Error: {prefix}, more than the ")
    assert f"KV cache {SMOLLM2_KV_PER_TOKEN * context / 1e9:,.1f} GB for {context} tokens" in err
    assert "RAM available; lower the context to " in err
    assert err.rstrip().endswith("use a smaller or more quantized model")


@pytest.mark.docker
def test_a_model_too_large_for_the_gpu_stops_launch_before_any_pull(
        home_with_model: Path, mocker: MockerFixture, docker_client: docker.DockerClient,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake_nvml(mocker, [FakeGpu("NVIDIA A10", (8, 6), 24 * GIB, int(0.6 * GIB))])
    _, checks, _ = doctor(capsys, "--runtime", "docker")
    finding = checks["fit smollm2-135m"]
    code, out, err = launch(capsys, "--runtime", "docker", "--pull", "always")
    assert code == 1
    assert err == f"Error: {finding['detail']}; {finding['fix']}\n"
    assert "Pulling" not in out
    assert managed(docker_client, home_with_model) == ([], [])


@pytest.mark.docker
def test_no_nvidia_runtime_for_a_gpu_stack_stops_launch_before_any_pull(
        home_with_model: Path, mocker: MockerFixture, docker_client: docker.DockerClient,
        capsys: pytest.CaptureFixture[str]) -> None:
    fake_nvml(mocker, [H200])  # a GPU NVML sees, an engine without the toolkit (real)
    _, checks, _ = doctor(capsys, "--runtime", "docker")
    finding = checks["gpu request"]
    assert finding["status"] == "fail"
    code, out, err = launch(capsys, "--runtime", "docker", "--pull", "always")
    assert code == 1
    assert err == f"Error: {finding['detail']}; {finding['fix']}\n"
    assert "Pulling" not in out
    assert managed(docker_client, home_with_model) == ([], [])


@pytest.fixture
def small_models_disk(home: Path) -> Iterator[Path]:
    """The models folder on a real 20 MiB file system (tmpfs), too small for SmolLM2."""
    models = home / "models"
    models.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(models)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield models
    finally:
        subprocess.run(["umount", str(models)], check=True)


def test_a_disk_too_small_for_the_model_stops_launch_before_the_download(
        home: Path, small_models_disk: Path, no_docker: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    _, checks, _ = doctor(capsys)
    finding = checks["disk models"]
    assert finding == {
        "name": "disk models", "status": "fail",
        "detail": f"pulling smollm2-135m needs about 98.4 MB but only 21.0 MB free at "
                  f"{small_models_disk}",
        "fix": "free at least 77.4 MB there, or move it to a bigger disk"}
    code, out, err = launch(capsys)
    assert code == 1
    assert err == f"Error: {finding['detail']}; {finding['fix']}\n"
    assert "Pulling" not in out
    assert list(small_models_disk.iterdir()) == []  # not even a partial download
