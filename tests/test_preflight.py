"""`launch` runs doctor's checks first and stops before any download or start when one would
doom it, with the same finding and fix doctor shows: a corrupt model, a model too large for
the memory it would run in, no NVIDIA runtime for a GPU stack, a disk too small."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import docker
import psutil
import pynvml
import pytest
from pytest_mock import MockerFixture

from launcher.cli import main
from tests.docker_fixtures import managed
from tests.launched import Launched
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
    # Never more than the 8192 tokens SmolLM2 was trained for (it said 905984 once).
    assert "RAM available; lower the context to 8192 tokens (--context-size 8192)" in err
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


# -- issue 17: nothing is downloaded for a launch that is doomed anyway -------------------


def nothing_downloaded(home: Path, out: str) -> None:
    assert "Pulling" not in out and "First run" not in out, out
    models = home / "models"
    assert not models.exists() or list(models.iterdir()) == []


@pytest.mark.docker
def test_no_driver_and_the_docker_runtime_is_refused_before_the_model_download(
        home: Path, mocker: MockerFixture, docker_client: docker.DockerClient,
        capsys: pytest.CaptureFixture[str]) -> None:
    nvml_fails(mocker, pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    _, checks, _ = doctor(capsys, "--runtime", "docker")
    finding = checks["gpu request"]
    code, out, err = launch(capsys, "--runtime", "docker")
    assert code == 1
    assert err == f"Error: {finding['detail']}; {finding['fix']}\n"
    assert re.match(r"Error: the llm service needs an NVIDIA GPU, but none is usable: .+; "
                    r"install the NVIDIA driver, or run on the CPU with --gpus none", err), err
    nothing_downloaded(home, out)
    assert managed(docker_client, home) == ([], [])


def test_a_busy_explicit_port_is_refused_before_the_model_download(
        home: Path, no_docker: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        monkeypatch.setenv("OPEA_CHAT_LLM_PORT", str(port))
        _, checks, _ = doctor(capsys)
        code, out, err = launch(capsys)
    assert code == 1
    assert err == f"Error: {checks['ports']['detail']}; {checks['ports']['fix']}\n"
    assert err.startswith(f"Error: port {port} for the llm service is already in use "
                          "(llm_port, from ")
    nothing_downloaded(home, out)


def test_a_model_too_large_for_the_memory_is_refused_before_its_download(
        home: Path, no_docker: None, mocker: MockerFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    # A machine with 64 MB free: SmolLM2's catalogue entry alone weighs 98 MB.
    mocker.patch.object(psutil, "virtual_memory",
                        return_value=SimpleNamespace(total=256 << 20, available=64 << 20))
    _, checks, _ = doctor(capsys)
    finding = checks["fit smollm2-135m"]
    assert finding["status"] == "fail"
    code, out, err = launch(capsys)
    assert code == 1
    assert err == f"Error: {finding['detail']}; {finding['fix']}\n"
    assert "RAM available" in err
    nothing_downloaded(home, out)


@pytest.mark.integration
def test_the_first_launch_in_a_fresh_home_still_pulls_and_starts(home: Path) -> None:
    launched = Launched(["--no-browser"], home)  # random free ports
    try:
        launched.expect(r"^First run: smollm2-135m is not in ")
        launched.expect(r"^Runtime: local ")
        launched.expect(r"^Ready: http://127\.0\.0\.1:\d+$", timeout=300)
        assert (home / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf").stat().st_size == \
            98_362_432
        launched.signal(signal.SIGINT)
        assert launched.wait() == 0, launched.output
        assert launched.survivors() == []
    finally:
        launched.cleanup()


@pytest.mark.integration
def test_a_second_home_given_the_same_ports_is_refused_before_any_download(
        home_with_model: Path, tmp_path: Path) -> None:
    """Issue 13 item 4: the second launch never takes the first one's servers for its own."""
    first = Launched(["--no-browser"], home_with_model)  # explicit random ports
    second: Launched | None = None
    try:
        first.expect(r"^Ready: ", timeout=300)
        urls = first.session()["urls"]
        ports = {f"OPEA_CHAT_{name.upper()}_PORT": url.rsplit(":", 1)[1]
                 for name, url in urls.items()}
        second = Launched(["--no-browser"], tmp_path / "second-home", ports)
        assert second.wait() == 1, second.output
        assert re.search(r"^Error: port \d+ for the \w+ service is already in use ",
                         second.output, re.MULTILINE), second.output
        assert "healthy" not in second.output and "Ready" not in second.output
        nothing_downloaded(tmp_path / "second-home", second.output)
        first.signal(signal.SIGINT)
        assert first.wait() == 0, first.output
    finally:
        for launched in (first, second):
            if launched is not None:
                launched.cleanup()
