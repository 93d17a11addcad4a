"""Which device runs the model, as `status` and the app's model panel say it. NVML is
mocked (no GPU here); the CPU, llama.cpp's build and the local runtime are real."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pynvml
from pytest_mock import MockerFixture
from rich.console import Console

from launcher.checks import Status
from launcher.devices import Placement, llama_cpp_offloads, place_model
from launcher.gpu import GpuReport, probe_gpus
from launcher.local_runtime import LocalRuntime, cpu_name, service_command
from launcher.paths import resolve_paths
from launcher.plan import StackPlan, plan_stack
from launcher.preflight import Ram, model_fit
from launcher.progress import Progress
from launcher.settings import load_settings
from models.formats import ModelFormat
from models.memory import ModelShape, estimate
from models.store import LocalModel, inspect_model
from tests.nvml import GIB, H200, FakeGpu, fake_nvml

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


def smol_plan(smollm2: Path, context: int = 2048) -> StackPlan:
    model = LocalModel("smollm2-135m", smollm2, smollm2.stat().st_size)
    model = replace(model, info=inspect_model(model))
    settings = load_settings(resolve_paths(), {}, flags={"context_size": context})
    return plan_stack(settings, model, lambda port: True, lambda: 40000, runtime="local")


def test_the_local_runtime_uses_a_gpu_only_with_a_gpu_build_of_llama_cpp(
        mocker: MockerFixture, tmp_path: Path, home: Path, smollm2: Path) -> None:
    """llama-cpp-python 0.3.36 llama_cpp/llama_cpp.py: llama_supports_gpu_offload() is
    true only for a GPU build (GGML_CUDA); the CPU build ignores n_gpu_layers."""
    assert llama_cpp_offloads() is False  # this machine's portable CPU build
    plan = smol_plan(smollm2)
    fake_gpus(mocker)
    cpu_build = LocalRuntime(tmp_path)
    console = io.StringIO()
    cpu_build.prepare(plan, Progress(Console(file=console, width=300)))
    assert cpu_build.gpu_layers == 0 and cpu_build.device().startswith(f"CPU: {cpu_name()} (")
    assert f"Device: CPU: {cpu_name()} (NVIDIA H200, 139 of 141 GB free; NVIDIA H200, 139 of " \
        "141 GB free unused: this llama.cpp was built for the CPU, so the GPU stays unused" \
        in console.getvalue()
    assert service_command(plan.service("llm"), plan, cpu_build.gpu_layers)[-3:] == [
        "0", "--interrupt_requests", "False"]

    fake_gpus(mocker)
    mocker.patch("llama_cpp.llama_supports_gpu_offload", return_value=True)
    gpu_build = LocalRuntime(tmp_path)
    console = io.StringIO()
    gpu_build.prepare(plan, Progress(Console(file=console)))
    assert gpu_build.gpu_layers == -1
    assert console.getvalue().strip() == ("Device: GPU: NVIDIA H200, 139 of 141 GB free; "
                                          "NVIDIA H200, 139 of 141 GB free")
    assert gpu_build.device() == ("GPU: NVIDIA H200, 139 of 141 GB free; "
                                  "NVIDIA H200, 139 of 141 GB free")
    command = service_command(plan.service("llm"), plan, gpu_build.gpu_layers)
    assert command[command.index("--n_gpu_layers") + 1] == "-1"


def test_a_model_larger_than_the_vram_stays_on_the_cpu_and_the_runtime_line_says_why(
        mocker: MockerFixture, tmp_path: Path, home: Path, smollm2: Path) -> None:
    """The same fit check as the docker runtime's (launcher.checks.fit_check): SmolLM2 at a
    32k context needs ~1 GB; on a GPU with 0.6 GB free it runs on the CPU."""
    fake_nvml(mocker, [FakeGpu(name="NVIDIA T400", compute_capability=(7, 5), total=2 * GIB,
                               free=GIB + GIB // 10)])
    mocker.patch("llama_cpp.llama_supports_gpu_offload", return_value=True)
    runtime = LocalRuntime(tmp_path)
    console = io.StringIO()
    runtime.prepare(smol_plan(smollm2, context=32768), Progress(Console(file=console,
                                                                         width=400)))
    assert runtime.gpu_layers == 0
    assert runtime.device().startswith(f"CPU: {cpu_name()} (NVIDIA T400, 1 of 2 GB free unused: "
                                       "the model runs on the CPU: smollm2-135m needs about ")
    assert "Device: CPU: " in console.getvalue()
    assert "unused: the model runs on the CPU: smollm2-135m needs about" in \
        console.getvalue().replace("\n", " ")
    # The same model at a small context fits and goes to the GPU.
    fake_nvml(mocker, [FakeGpu(name="NVIDIA T400", compute_capability=(7, 5), total=2 * GIB,
                               free=GIB + GIB // 10)])
    small = LocalRuntime(tmp_path)
    small.prepare(smol_plan(smollm2, context=2048), Progress(Console(file=io.StringIO())))
    assert small.gpu_layers == -1 and small.device().startswith("GPU: NVIDIA T400")


def test_placement_is_decided_by_gpu_build_and_fit(mocker: MockerFixture) -> None:
    fake_nvml(mocker, [H200])
    gpus = probe_gpus()
    need = estimate(ModelShape(weight_bytes=200 * GIB), 4096, "llama.cpp")
    assert place_model(gpus, True, "big", need).gpu_layers == 0
    assert place_model(gpus, True, "big", None).gpu_layers == -1
    assert place_model(gpus, False, "big", None).reason is not None
    assert place_model(GpuReport(problem="none"), True, "m", None) == Placement(0)


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


def test_launch_and_doctor_check_the_fit_where_the_local_runtime_will_put_the_model(
        mocker: MockerFixture, home: Path) -> None:
    """With a CUDA build the local runtime runs a model that fits the VRAM on the GPU, so a
    model larger than the free RAM but within the VRAM is not refused (launch and doctor
    share launcher.preflight.model_fit)."""
    fake_nvml(mocker, [H200])
    settings = load_settings(resolve_paths(), {}, flags={"context_size": 4096})
    shape = ModelShape(weight_bytes=40 * GIB, layers=80, kv_heads=8, head_dim=128)
    ram = Ram(total=32 * GIB, available=30 * GIB)
    gguf = ModelFormat.GGUF
    cpu_build = model_fit("llama-70b", shape, gguf, settings, "local", probe_gpus(), ram)
    assert cpu_build.status is Status.FAIL and "RAM available" in cpu_build.detail
    mocker.patch("llama_cpp.llama_supports_gpu_offload", return_value=True)
    gpu_build = model_fit("llama-70b", shape, gguf, settings, "local", probe_gpus(), ram)
    assert gpu_build.status is Status.PASS
    assert "VRAM available (VRAM of NVIDIA H200" in gpu_build.detail
    # Too large for the VRAM too: judged against RAM, where it would then run.
    huge = replace(shape, weight_bytes=400 * GIB)
    assert "RAM available" in model_fit("huge", huge, gguf, settings, "local", probe_gpus(),
                                        ram).detail
