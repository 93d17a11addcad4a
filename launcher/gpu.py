"""What NVIDIA GPUs this machine has, read in-process through NVML (nvidia-ml-py).

Never raises: a missing library, an unloaded driver or a lost GPU become a ``problem``
sentence, so no command (not even ``--help``) is ever broken by GPU probing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    compute_capability: tuple[int, int]
    memory_total: int
    memory_free: int


@dataclass(frozen=True)
class GpuReport:
    gpus: tuple[Gpu, ...] = field(default_factory=tuple)
    driver_version: str | None = None
    cuda_version: str | None = None  # the newest CUDA the driver supports, e.g. "12.4"
    problem: str | None = None

    @property
    def usable(self) -> bool:
        return bool(self.gpus) and self.problem is None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _why(error: Exception) -> str:
    kind = type(error).__name__
    if kind == "NVMLError_LibraryNotFound":
        return "no NVIDIA driver found (the NVML library libnvidia-ml is missing)"
    if kind == "NVMLError_DriverNotLoaded":
        return "the NVIDIA driver is installed but not loaded"
    if kind == "NVMLError_NoPermission":
        return "no permission to read the NVIDIA GPUs"
    if kind == "NVMLError_LibRmVersionMismatch":
        return "the NVIDIA driver and its kernel module have different versions (reboot?)"
    return f"NVML failed: {error}"


def probe_gpus() -> GpuReport:
    try:
        return _probe()
    except Exception as error:  # a broken driver can fail in ways NVML does not name
        return GpuReport(problem=f"the NVIDIA driver failed: {type(error).__name__}: {error}")


def _probe() -> GpuReport:
    try:
        import pynvml
    except ImportError:
        return GpuReport(problem="nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        return GpuReport(problem=_why(error))
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            gpus.append(Gpu(index=index, name=_text(pynvml.nvmlDeviceGetName(handle)),
                            compute_capability=(int(major), int(minor)),
                            memory_total=int(memory.total), memory_free=int(memory.free)))
        problem = None if gpus else "the NVIDIA driver is loaded but sees no GPU"
        return GpuReport(gpus=tuple(gpus), driver_version=driver,
                         cuda_version=f"{cuda // 1000}.{cuda % 1000 // 10}", problem=problem)
    except pynvml.NVMLError as error:
        return GpuReport(problem=_why(error))
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def describe_gpus(report: GpuReport) -> str:
    """"NVIDIA H200, 140 of 141 GB free" for each GPU, or why there is none."""
    if not report.gpus:
        return report.problem or "no GPU"
    return "; ".join(f"{gpu.name}, {gpu.memory_free / 1e9:.0f} of {gpu.memory_total / 1e9:.0f} "
                     "GB free" for gpu in report.gpus)
