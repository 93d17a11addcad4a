"""Which device runs the model, as `status` and the app's model panel say it. NVML is
mocked (no GPU here); the CPU, llama.cpp's build and the local runtime are real."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pynvml
from pytest_mock import MockerFixture
from rich.console import Console

from launcher.gpu import probe_gpus
from launcher.local_runtime import LocalRuntime, cpu_name, llama_cpp_offloads
from launcher.progress import Progress

GB = 10**9


def fake_gpus(mocker: MockerFixture, count: int = 2) -> None:
    mocker.patch("pynvml.nvmlInit")
    mocker.patch("pynvml.nvmlShutdown")
    mocker.patch("pynvml.nvmlSystemGetDriverVersion", return_value="565.57.01")
    mocker.patch("pynvml.nvmlSystemGetCudaDriverVersion_v2", return_value=12070)
    mocker.patch("pynvml.nvmlDeviceGetCount", return_value=count)
    mocker.patch("pynvml.nvmlDeviceGetHandleByIndex", side_effect=lambda index: index)
    mocker.patch("pynvml.nvmlDeviceGetName", side_effect=[b"NVIDIA H200", "NVIDIA H200"])
    mocker.patch("pynvml.nvmlDeviceGetCudaComputeCapability", return_value=(9, 0))
    mocker.patch("pynvml.nvmlDeviceGetMemoryInfo", return_value=SimpleNamespace(
        total=141 * GB, free=139 * GB, used=2 * GB))


def test_without_an_nvidia_driver_the_cpu_is_named(mocker: MockerFixture, tmp_path: Path
                                                   ) -> None:
    mocker.patch("pynvml.nvmlInit", side_effect=pynvml.NVMLError(
        pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    runtime = LocalRuntime(tmp_path)
    assert runtime.gpu_layers == 0
    assert runtime.device() == f"CPU: {cpu_name()}"
    assert "threads" in runtime.device()


def test_cpu_model_comes_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Example CPU 9000 @ 3.0GHz\n")
    assert cpu_name(cpuinfo).startswith("Example CPU 9000 @ 3.0GHz, ")


def test_gpus_are_read_with_their_memory_and_compute_capability(mocker: MockerFixture) -> None:
    fake_gpus(mocker)
    report = probe_gpus()
    assert report.usable and report.cuda_version == "12.7"
    assert [(g.name, g.compute_capability, g.memory_free) for g in report.gpus] == [
        ("NVIDIA H200", (9, 0), 139 * GB)] * 2


def test_the_local_runtime_uses_a_gpu_only_with_a_gpu_build_of_llama_cpp(
        mocker: MockerFixture, tmp_path: Path) -> None:
    assert llama_cpp_offloads() is False  # this machine's portable CPU build
    fake_gpus(mocker)
    cpu_build = LocalRuntime(tmp_path)
    console = io.StringIO()
    cpu_build.prepare(None, Progress(Console(file=console)))  # type: ignore[arg-type]
    assert cpu_build.gpu_layers == 0 and cpu_build.device().startswith("CPU: ")
    assert "This llama.cpp was built for the CPU, so the GPU stays unused" in console.getvalue()

    fake_gpus(mocker)
    mocker.patch("llama_cpp.llama_supports_gpu_offload", return_value=True)
    gpu_build = LocalRuntime(tmp_path)
    assert gpu_build.gpu_layers == -1
    assert gpu_build.device() == ("GPU: NVIDIA H200, 139 of 141 GB free; "
                                  "NVIDIA H200, 139 of 141 GB free")


def test_an_nvml_failure_midway_falls_back_to_the_cpu(mocker: MockerFixture,
                                                      tmp_path: Path) -> None:
    mocker.patch("pynvml.nvmlInit")
    mocker.patch("pynvml.nvmlShutdown")
    mocker.patch("pynvml.nvmlSystemGetDriverVersion", return_value="565.57.01")
    mocker.patch("pynvml.nvmlSystemGetCudaDriverVersion_v2", return_value=12070)
    mocker.patch("pynvml.nvmlDeviceGetCount", side_effect=pynvml.NVMLError(
        pynvml.NVML_ERROR_GPU_IS_LOST))
    report = probe_gpus()
    assert not report.usable and report.problem is not None
    assert LocalRuntime(tmp_path, report).device().startswith("CPU: ")
