"""The verdicts doctor shows and launch obeys, from faked NVML (no GPU here) and plain facts:
no library, no driver, one GPU, two GPUs, a GPU with too little free memory, a toolkit
that is missing, disks, images and CUDA versions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pynvml
import pytest
from pytest_mock import MockerFixture

from launcher.checks import (
    TOOLKIT_HINT,
    Status,
    context_that_fits,
    cuda_check,
    cuda_requirement,
    disk_check,
    fit_check,
    gpu_checks,
    gpus_for_llm,
    image_check,
    memory_target,
    nvidia_runtime_check,
    require,
    runtime_check,
)
from launcher.docker_engine import DockerFacts
from launcher.errors import NotEnoughMemoryError
from launcher.gpu import probe_gpus, slow_report
from models.catalogue import CATALOGUE
from models.memory import MIB, estimate
from tests.nvml import GIB, H200, FakeGpu, fake_nvml, nvml_fails, nvml_raises

ENGINE = DockerFacts(version="20.10.24", api_version="1.41", runtimes=("runc",),
                     root_dir=Path("/var/lib/docker"))
TOOLKIT = DockerFacts(version="27.1", api_version="1.46", runtimes=("nvidia", "runc"))
L4 = FakeGpu("NVIDIA L4", (8, 9), 24 * GIB, 23 * GIB)
SMOL = CATALOGUE["smollm2-135m"].shape


def test_no_nvml_library_is_a_finding_with_a_fix(mocker: MockerFixture) -> None:
    nvml_fails(mocker, pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    [check] = gpu_checks(probe_gpus())
    assert (check.name, check.status) == ("gpu", Status.WARN)
    assert check.detail == ("no usable NVIDIA GPU: no NVIDIA driver found (the NVML library "
                            "libnvidia-ml is missing)")
    assert check.fix == ("to use a GPU, install the NVIDIA driver (then `nvidia-smi` lists the "
                         "GPU); without one, the local runtime runs models on the CPU")


def test_a_driver_that_is_not_loaded(mocker: MockerFixture) -> None:
    nvml_fails(mocker, pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    [check] = gpu_checks(probe_gpus())
    assert check.detail == ("no usable NVIDIA GPU: the NVIDIA driver is installed but not "
                            "loaded")


def test_a_broken_driver_never_raises_out_of_the_probe(mocker: MockerFixture) -> None:
    nvml_raises(mocker, OSError(5, "Input/output error"))
    report = probe_gpus()
    assert report.gpus == ()
    assert report.problem == "the NVIDIA driver failed: OSError: [Errno 5] Input/output error"


def test_one_gpu_with_its_driver_cuda_and_memory(mocker: MockerFixture) -> None:
    fake_nvml(mocker, [H200])
    checks = gpu_checks(probe_gpus())
    assert [(c.name, c.status, c.detail) for c in checks] == [
        ("gpu", Status.PASS, "NVIDIA driver 565.57.01, supports CUDA up to 12.7; 1 GPU"),
        ("gpu 0", Status.PASS, "NVIDIA H200, compute capability 9.0, 150.3 GB free of "
                               "151.4 GB"),
    ]


def test_two_gpus_each_on_its_line(mocker: MockerFixture) -> None:
    fake_nvml(mocker, [H200, L4], driver="550.90.07", cuda=12040)
    checks = gpu_checks(probe_gpus())
    assert [c.detail for c in checks] == [
        "NVIDIA driver 550.90.07, supports CUDA up to 12.4; 2 GPUs",
        "NVIDIA H200, compute capability 9.0, 150.3 GB free of 151.4 GB",
        "NVIDIA L4, compute capability 8.9, 24.7 GB free of 25.8 GB",
    ]


def test_a_gpu_docker_cannot_use_is_a_failure_not_a_silent_cpu_run(
        mocker: MockerFixture) -> None:
    fake_nvml(mocker, [H200])
    gpus = probe_gpus()
    check = nvidia_runtime_check(ENGINE, gpus)
    assert check.status is Status.FAIL
    assert check.detail.startswith("this machine has 1 NVIDIA GPU(s) but Docker cannot use "
                                   "them: no `nvidia` runtime (runtimes: runc)")
    assert check.fix == TOOLKIT_HINT
    unused = runtime_check("auto", "local", "Docker has no NVIDIA runtime", gpus, ENGINE)
    assert unused.status is Status.WARN
    assert unused.detail.endswith("so NVIDIA H200 would go unused")
    assert unused.fix is not None and "nvidia-ctk runtime configure" in unused.fix
    assert nvidia_runtime_check(TOOLKIT, gpus).status is Status.PASS
    cdi = DockerFacts(version="27", runtimes=("runc",), cdi_specs=(Path("/etc/cdi/nvidia.yaml"),))
    assert nvidia_runtime_check(cdi, gpus).detail == (
        "Docker can give containers GPUs: CDI spec /etc/cdi/nvidia.yaml")


def test_without_a_gpu_the_missing_toolkit_is_no_problem(mocker: MockerFixture) -> None:
    nvml_fails(mocker, pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    gpus = probe_gpus()
    assert nvidia_runtime_check(ENGINE, gpus).status is Status.PASS
    assert runtime_check("auto", "local", "no usable NVIDIA GPU", gpus, ENGINE).status is \
        Status.PASS


def test_a_gpu_with_too_little_free_memory_says_what_to_free(mocker: MockerFixture) -> None:
    busy = FakeGpu("NVIDIA A10", (8, 6), 24 * GIB, 200 * MIB)
    fake_nvml(mocker, [busy])
    gpus = probe_gpus()
    need = estimate(SMOL, 4096, "llama.cpp")
    target = memory_target("llama.cpp", gpus_for_llm("docker", True, "all", gpus),
                           ram_available=20 * GIB, ram_total=32 * GIB)
    assert target.kind == "VRAM" and target.available == 0  # less than CUDA's own share
    check = fit_check("smollm2-135m", need, target, "llama.cpp")
    assert check.status is Status.FAIL
    assert check.detail == (
        "smollm2-135m needs about 397.1 MB on llama.cpp (weights 96.6 MB, KV cache 94.4 MB for "
        "4096 tokens, buffers 206.2 MB), more than the 0 B VRAM available (VRAM of NVIDIA A10 "
        "(209.7 MB free))")
    assert check.fix == ("free GPU memory (`nvidia-smi` shows which processes use it); use a "
                         "smaller or more quantized model; or run it in RAM with --gpus none")
    with pytest.raises(NotEnoughMemoryError) as caught:
        require(check, NotEnoughMemoryError)
    assert caught.value.one_line() == f"{check.detail}; {check.fix}"


def test_llama_cpp_spreads_over_gpus_and_tgi_is_bounded_by_the_fullest(
        mocker: MockerFixture) -> None:
    half_full = FakeGpu("NVIDIA L4", (8, 9), 24 * GIB, 4 * GIB)
    fake_nvml(mocker, [L4, half_full])
    gpus = probe_gpus()
    both = gpus_for_llm("docker", True, "all", gpus)
    assert both is not None and len(both) == 2
    llama = memory_target("llama.cpp", both, 0, 0)
    tgi = memory_target("TGI", both, 0, 0)
    assert llama.available == 27 * GIB - 2 * 512 * MIB
    assert tgi.available == 8 * GIB - 2 * 512 * MIB
    assert gpus_for_llm("docker", True, "1", gpus) == [gpus.gpus[0]]
    assert gpus_for_llm("docker", True, "none", gpus) is None
    assert gpus_for_llm("local", False, "all", gpus) is None


def test_a_context_too_large_for_ram_gets_one_that_fits() -> None:
    shape = replace(SMOL, context_length=None)  # its own context unknown: memory decides
    need = estimate(shape, 1_000_000, "llama.cpp")
    target = memory_target("llama.cpp", None, ram_available=8 * GIB, ram_total=16 * GIB)
    check = fit_check("smollm2-135m", need, target, "llama.cpp")
    assert check.status is Status.FAIL
    fits = context_that_fits(need, target)
    assert fits is not None and fits % 256 == 0
    assert estimate(shape, fits, "llama.cpp").total <= 8 * GIB * 0.9
    assert estimate(shape, fits + 256, "llama.cpp").total > 8 * GIB * 0.9
    assert check.fix == (f"lower the context to {fits} tokens (--context-size {fits}); use a "
                         "smaller or more quantized model")


def test_the_context_advice_never_exceeds_the_models_own_context() -> None:
    # 8 GB of RAM would hold ~900,000 tokens of SmolLM2's KV cache; it was trained for 8192.
    need = estimate(SMOL, 1_000_000, "llama.cpp")
    target = memory_target("llama.cpp", None, ram_available=8 * GIB, ram_total=16 * GIB)
    assert SMOL.context_length == 8192
    assert context_that_fits(need, target) == 8192
    assert (fit_check("smollm2-135m", need, target, "llama.cpp").fix or "").startswith(
        "lower the context to 8192 tokens (--context-size 8192);")
    # Already within its own context: the advice is what fits in memory, as before.
    small = memory_target("llama.cpp", None, ram_available=need.weights + need.overhead
                          + need.kv_cache // 1000 * 5, ram_total=GIB)
    fits = context_that_fits(estimate(SMOL, 8192, "llama.cpp"), small)
    assert fits is not None and fits < 8192


def test_a_tight_fit_is_a_warning() -> None:
    need = estimate(SMOL, 4096, "llama.cpp")
    target = memory_target("llama.cpp", None, ram_available=need.total + 1, ram_total=GIB)
    assert fit_check("m", need, target, "llama.cpp").status is Status.WARN


def test_disk_verdicts() -> None:
    where = Path("/models")
    assert disk_check("disk models", where, 50 * 10**6, 98_362_432, "pulling smollm2-135m") \
        .detail == "pulling smollm2-135m needs about 98.4 MB but only 50.0 MB free at /models"
    short = disk_check("d", where, 50 * 10**6, 98_362_432, "x")
    assert (short.status, short.fix) == (Status.FAIL, "free at least 48.4 MB there, or move it "
                                                      "to a bigger disk")
    assert disk_check("d", where, 10**9, 98_362_432, "x").status is Status.WARN
    assert disk_check("d", where, 10**11, 98_362_432, "x").status is Status.PASS
    assert disk_check("d", where, None, 1, "x").status is Status.WARN


def test_image_verdicts_follow_the_pull_policy() -> None:
    here = image_check("llm", "ghcr.io/ggml-org/llama.cpp:server-cuda", 2_100_000_000, None,
                       "missing")
    assert (here.status, here.detail) == (
        Status.PASS, "ghcr.io/ggml-org/llama.cpp:server-cuda is here (2.1 GB)")
    missing = image_check("llm", "img:1", None, 1_500_000_000, "missing")
    assert (missing.status, missing.detail) == (
        Status.WARN, "img:1 is not here; launch will pull it first (1.5 GB to download)")
    never = image_check("llm", "img:1", None, None, "never")
    assert never.status is Status.FAIL
    assert never.detail == ("img:1 is not here and --pull never forbids pulling it (download "
                            "size unknown: its registry did not answer)")


def test_cuda_requirement_clauses_are_alternatives_as_the_toolkit_reads_them(
        mocker: MockerFixture) -> None:
    """NVIDIA's CUDA images carry ``NVIDIA_REQUIRE_CUDA=cuda>=12.4 brand=tesla,driver>=470,
    driver<471 ...`` (gitlab.com/nvidia/container-images/cuda, dist/12.4.1/ubuntu2204/base/
    Dockerfile). libnvidia-container (NVIDIA/libnvidia-container, src/dsl.c, dsl_evaluate,
    v1.17) reads space-separated clauses as alternatives and comma-separated constraints as
    all-required, checked for each GPU given: a datacenter GPU on an R535 driver (CUDA 12.2)
    runs a CUDA 12.4 image through ``brand=...,driver>=535,driver<536``."""
    requirement = ("cuda>=12.4 brand=tesla,driver>=470,driver<471 "
                   "brand=nvidia,driver>=535,driver<536 brand=geforce,driver>=535,driver<536")
    env = ["PATH=/usr/bin", f"NVIDIA_REQUIRE_CUDA={requirement}", "NVIDIA_VISIBLE_DEVICES=all"]
    assert cuda_requirement(env) == requirement
    assert cuda_requirement(["PATH=/usr/bin"]) is None
    image = "ghcr.io/ggml-org/llama.cpp:server-cuda-b11429"

    fake_nvml(mocker, [H200], driver="535.183.01", cuda=12020)  # H200: brand "nvidia"
    r535 = cuda_check("llm", image, requirement, probe_gpus())
    assert r535 is not None and r535.status is Status.PASS
    assert r535.detail == (f"{image} needs brand=nvidia,driver>=535,driver<536; NVIDIA driver "
                           "535.183.01 (CUDA up to 12.2) meets it")

    fake_nvml(mocker, [H200], driver="550.54.15", cuda=12040)
    r550 = cuda_check("llm", image, requirement, probe_gpus())
    assert r550 is not None and r550.status is Status.PASS and "needs cuda>=12.4" in r550.detail

    # A consumer GPU on an R530 driver meets no clause: the container would not start.
    geforce = FakeGpu(name="NVIDIA GeForce RTX 4090", compute_capability=(8, 9),
                      brand=pynvml.NVML_BRAND_GEFORCE_RTX)
    fake_nvml(mocker, [geforce], driver="530.41.03", cuda=12010)
    old = cuda_check("llm", image, requirement, probe_gpus())
    assert old is not None and old.status is Status.FAIL
    assert old.detail == (f"{image} needs cuda>=12.4 but NVIDIA driver 530.41.03 (CUDA up to "
                          f"12.1) meets none of `{requirement}`: the container would refuse "
                          "to start")
    assert old.fix is not None and "cuda>=12.4" in old.fix

    # Every GPU given must meet it: a second GPU of another brand gets no pass.
    fake_nvml(mocker, [H200, geforce], driver="535.183.01", cuda=12020)
    mixed = cuda_check("llm", image, "cuda>=12.4 brand=nvidia,driver>=535,driver<536",
                       probe_gpus())
    assert mixed is not None and mixed.status is Status.FAIL


def test_a_clause_about_an_unknown_brand_is_a_warning_naming_it(mocker: MockerFixture) -> None:
    """An old driver whose NVML cannot tell the brand: the brand clause may hold (the
    toolkit knows), so doctor warns with the clause instead of a false FAIL."""
    fake_nvml(mocker, [H200], driver="535.183.01", cuda=12020)
    mocker.patch.object(pynvml, "nvmlDeviceGetBrand",
                        side_effect=pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND))
    verdict = cuda_check("llm", "img", "cuda>=12.4 brand=tesla,driver>=535,<536", probe_gpus())
    assert verdict is not None and verdict.status is Status.WARN
    assert verdict.detail == ("img asks for `cuda>=12.4 brand=tesla,driver>=535,<536`; whether "
                              "NVIDIA driver 535.183.01 (CUDA up to 12.2) meets "
                              "`brand=tesla,driver>=535,<536` cannot be told here")
    # The driver part alone decides it here: a bare "<536" continues "driver".
    fake_nvml(mocker, [H200], driver="536.10", cuda=12020)
    mocker.patch.object(pynvml, "nvmlDeviceGetBrand",
                        side_effect=pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND))
    no = cuda_check("llm", "img", "cuda>=12.4 brand=tesla,driver>=535,<536", probe_gpus())
    assert no is not None and no.status is Status.FAIL


def test_one_lost_gpu_is_skipped_and_reported_not_every_gpu(mocker: MockerFixture) -> None:
    """nvidia-ml-py (pynvml.py, nvmlDeviceGetHandleByIndex, 12.x): a GPU that fell off the
    bus raises NVMLError_GPUIsLost for its own handle only; the others still answer."""
    fake_nvml(mocker, [H200, FakeGpu(lost=True), H200])
    report = probe_gpus()
    assert report.usable and [gpu.index for gpu in report.gpus] == [0, 2]
    checks = gpu_checks(report)
    assert [(c.name, c.status) for c in checks] == [
        ("gpu", Status.PASS), ("gpu 0", Status.PASS), ("gpu 2", Status.PASS),
        ("gpu 1", Status.WARN)]
    assert checks[-1].detail == "skipped: NVML failed: GPU is lost"
    assert checks[0].detail.endswith("; 2 GPUs")

    fake_nvml(mocker, [FakeGpu(lost=True)])
    alone = probe_gpus()
    assert not alone.usable
    assert alone.problem == "no GPU answers: GPU 0: NVML failed: GPU is lost"
    assert [(c.name, c.status) for c in gpu_checks(alone)] == [("gpu", Status.WARN),
                                                               ("gpu 0", Status.WARN)]


def test_a_slow_nvml_is_slow_not_absent(mocker: MockerFixture) -> None:
    """Without persistence mode nvmlInit first sets the GPUs up (NVIDIA's "Driver
    Persistence" guide): seconds, not a missing GPU."""
    fake_nvml(mocker, [H200])
    clock = iter([100.0, 102.5])
    mocker.patch("launcher.gpu.time.monotonic", side_effect=lambda: next(clock))
    report = probe_gpus()
    assert report.usable and report.init_seconds == 2.5
    first = gpu_checks(report)[0]
    assert first.status is Status.WARN and first.detail.endswith("NVML took 2.5 s to answer")
    assert first.fix is not None and "nvidia-smi -pm 1" in first.fix

    slow = gpu_checks(slow_report(1.6))
    assert len(slow) == 1 and slow[0].status is Status.WARN
    assert slow[0].detail.startswith("the NVIDIA driver is slow to answer: NVML did not answer "
                                     "within 1.6 s; that is not \"no GPU\"")
