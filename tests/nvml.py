"""NVML faked with pytest-mock: the one thing the tests cannot run here (no GPU). The fakes
replace nvidia-ml-py's own functions, so the product's probe code runs unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pynvml
from pytest_mock import MockerFixture

GIB = 1 << 30


@dataclass(frozen=True)
class FakeGpu:
    name: str = "NVIDIA H200"
    compute_capability: tuple[int, int] = (9, 0)
    total: int = 141 * GIB
    free: int = 140 * GIB
    brand: int = pynvml.NVML_BRAND_NVIDIA
    # NVML counts it but its handle fails (a GPU fallen off the bus, say).
    lost: bool = False


H200 = FakeGpu()


def fake_nvml(mocker: MockerFixture, gpus: list[FakeGpu], driver: str = "565.57.01",
              cuda: int = 12070) -> None:
    """A loaded driver (``cuda``: NVML's encoding, 12070 for CUDA 12.7) with ``gpus``."""
    memory = {id(gpu): SimpleNamespace(total=gpu.total, free=gpu.free,
                                       used=gpu.total - gpu.free) for gpu in gpus}
    mocker.patch.object(pynvml, "nvmlInit")
    mocker.patch.object(pynvml, "nvmlShutdown")
    mocker.patch.object(pynvml, "nvmlSystemGetDriverVersion", return_value=driver)
    mocker.patch.object(pynvml, "nvmlSystemGetCudaDriverVersion_v2", return_value=cuda)
    mocker.patch.object(pynvml, "nvmlDeviceGetCount", return_value=len(gpus))
    def handle(index: int) -> FakeGpu:
        if gpus[index].lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return gpus[index]

    mocker.patch.object(pynvml, "nvmlDeviceGetHandleByIndex", side_effect=handle)
    mocker.patch.object(pynvml, "nvmlDeviceGetMemoryInfo",
                        side_effect=lambda handle: memory[id(handle)])
    mocker.patch.object(pynvml, "nvmlDeviceGetCudaComputeCapability",
                        side_effect=lambda handle: handle.compute_capability)
    mocker.patch.object(pynvml, "nvmlDeviceGetName", side_effect=lambda handle: handle.name)
    mocker.patch.object(pynvml, "nvmlDeviceGetBrand", side_effect=lambda handle: handle.brand)


def nvml_fails(mocker: MockerFixture, code: int) -> None:
    """nvmlInit fails with NVML's own error for ``code`` (pynvml.NVML_ERROR_*)."""
    mocker.patch.object(pynvml, "nvmlInit", side_effect=pynvml.NVMLError(code))


def nvml_raises(mocker: MockerFixture, error: BaseException | Any) -> None:
    """nvmlInit fails in a way NVML does not name (a broken driver, a hang)."""
    mocker.patch.object(pynvml, "nvmlInit", side_effect=error)
