"""The device line of the model panel. NVML is mocked (no GPU here), the CPU is real."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pynvml
from pytest_mock import MockerFixture

from app.device import GIB, cpu_name, detect_device, nvidia_gpus


def test_without_an_nvidia_driver_the_cpu_is_named(mocker: MockerFixture) -> None:
    mocker.patch("pynvml.nvmlInit", side_effect=pynvml.NVMLError(
        pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    device = detect_device("local")
    assert device.gpus == () and not device.llm_uses_gpu
    assert device.describe().startswith("CPU: ") and "threads" in device.describe()


def test_cpu_model_comes_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Example CPU 9000 @ 3.0GHz\n")
    assert cpu_name(cpuinfo).startswith("Example CPU 9000 @ 3.0GHz, ")


def fake_gpus(mocker: MockerFixture) -> None:
    mocker.patch("pynvml.nvmlInit")
    mocker.patch("pynvml.nvmlShutdown")
    mocker.patch("pynvml.nvmlDeviceGetCount", return_value=2)
    mocker.patch("pynvml.nvmlDeviceGetHandleByIndex", side_effect=lambda i: i)
    mocker.patch("pynvml.nvmlDeviceGetName", side_effect=[b"NVIDIA H200", "NVIDIA H200"])
    mocker.patch("pynvml.nvmlDeviceGetMemoryInfo", return_value=SimpleNamespace(
        total=141 * GIB, used=int(1.5 * GIB)))


def test_gpus_are_listed_with_memory(mocker: MockerFixture) -> None:
    fake_gpus(mocker)
    gpus = nvidia_gpus()
    assert [gpu.describe() for gpu in gpus] == ["NVIDIA H200, 1.5 of 141.0 GiB used"] * 2


def test_the_local_runtime_uses_a_gpu_only_with_a_gpu_build_of_llama_cpp(
        mocker: MockerFixture) -> None:
    fake_gpus(mocker)
    mocker.patch("llama_cpp.llama_supports_gpu_offload", return_value=False)
    assert detect_device("local").describe().startswith("CPU: ")
    fake_gpus(mocker)
    mocker.patch("llama_cpp.llama_supports_gpu_offload", return_value=True)
    assert detect_device("local").describe().startswith("GPU: NVIDIA H200, 1.5 of 141.0")
    fake_gpus(mocker)
    assert detect_device("docker").describe().startswith("GPU: NVIDIA H200")


def test_an_nvml_failure_midway_falls_back_to_the_cpu(mocker: MockerFixture) -> None:
    mocker.patch("pynvml.nvmlInit")
    mocker.patch("pynvml.nvmlShutdown")
    mocker.patch("pynvml.nvmlDeviceGetCount", side_effect=pynvml.NVMLError(
        pynvml.NVML_ERROR_GPU_IS_LOST))
    assert detect_device("docker").describe().startswith("CPU: ")
