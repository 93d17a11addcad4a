"""What NVIDIA GPUs this machine has, read in-process through NVML (nvidia-ml-py).

Never raises: a missing library, an unloaded driver or a lost GPU become a ``problem``
sentence, so no command (not even ``--help``) is ever broken by GPU probing.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

# nvmlInit slower than this is worth a word: without persistence mode the driver sets each
# GPU up on first use, which can take seconds (and more on machines with many GPUs).
SLOW_INIT = 1.0
PERSISTENCE_HINT = ("turn on persistence mode (`sudo nvidia-smi -pm 1`, or run "
                    "nvidia-persistenced) so that the driver answers at once")


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    compute_capability: tuple[int, int]
    memory_total: int
    memory_free: int
    # NVIDIA's brand as the container toolkit names it ("tesla", "geforce", ...); None when
    # NVML would not say. NVIDIA_REQUIRE_CUDA clauses test it.
    brand: str | None = None


@dataclass(frozen=True)
class SkippedGpu:
    """A GPU the driver counts but that did not answer (lost, fallen off the bus, ...)."""

    index: int
    why: str


@dataclass(frozen=True)
class GpuReport:
    gpus: tuple[Gpu, ...] = field(default_factory=tuple)
    driver_version: str | None = None
    cuda_version: str | None = None  # the newest CUDA the driver supports, e.g. "12.4"
    problem: str | None = None
    skipped: tuple[SkippedGpu, ...] = field(default_factory=tuple)
    # How long nvmlInit took; ``slow``: it had not answered when the caller stopped waiting.
    init_seconds: float | None = None
    slow: bool = False

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


# pynvml's NVML_BRAND_* names -> the names libnvidia-container's `brand=` clauses use.
_BRANDS = {
    "UNKNOWN": "unknown", "QUADRO": "quadro", "TESLA": "tesla", "NVS": "nvs", "GRID": "grid",
    "GEFORCE": "geforce", "TITAN": "titan", "NVIDIA_VAPPS": "vapps", "NVIDIA_VPC": "vpc",
    "NVIDIA_VCS": "vcs", "NVIDIA_VWS": "vws", "NVIDIA_CLOUD_GAMING": "cloudgaming",
    "QUADRO_RTX": "quadrortx", "NVIDIA_RTX": "nvidiartx", "NVIDIA": "nvidia",
    "GEFORCE_RTX": "geforcertx", "TITAN_RTX": "titanrtx",
}


def _brand(pynvml: Any, handle: Any) -> str | None:
    try:
        code = pynvml.nvmlDeviceGetBrand(handle)
    except Exception:  # an old driver without the call: the brand stays unknown to us
        return None
    for name, brand in _BRANDS.items():
        if getattr(pynvml, f"NVML_BRAND_{name}", None) == code:
            return brand
    return None


def slow_report(waited: float) -> GpuReport:
    """What a caller that stopped waiting for NVML knows: the driver is slow, not absent."""
    return GpuReport(problem=f"the NVIDIA driver is slow to answer: NVML did not answer "
                             f"within {waited:.1f} s", slow=True)


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
    started = time.monotonic()
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        return GpuReport(problem=_why(error), init_seconds=time.monotonic() - started)
    init_seconds = time.monotonic() - started
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = pynvml.nvmlSystemGetCudaDriverVersion_v2()
        gpus = []
        skipped = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            # One lost GPU must not hide the others: skip it and say so.
            try:
                gpus.append(_gpu(pynvml, index))
            except pynvml.NVMLError as error:
                skipped.append(SkippedGpu(index, _why(error)))
        problem = None
        if not gpus:
            problem = "the NVIDIA driver is loaded but sees no GPU" if not skipped else \
                "no GPU answers: " + "; ".join(f"GPU {s.index}: {s.why}" for s in skipped)
        return GpuReport(gpus=tuple(gpus), driver_version=driver,
                         cuda_version=f"{cuda // 1000}.{cuda % 1000 // 10}", problem=problem,
                         skipped=tuple(skipped), init_seconds=init_seconds)
    except pynvml.NVMLError as error:
        return GpuReport(problem=_why(error), init_seconds=init_seconds)
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def _gpu(pynvml: Any, index: int) -> Gpu:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
    return Gpu(index=index, name=_text(pynvml.nvmlDeviceGetName(handle)),
               compute_capability=(int(major), int(minor)), memory_total=int(memory.total),
               memory_free=int(memory.free), brand=_brand(pynvml, handle))


def describe_gpus(report: GpuReport) -> str:
    """"NVIDIA H200, 140 of 141 GB free" for each GPU, or why there is none."""
    if not report.gpus:
        return report.problem or "no GPU"
    return "; ".join(f"{gpu.name}, {gpu.memory_free / 1e9:.0f} of {gpu.memory_total / 1e9:.0f} "
                     "GB free" for gpu in report.gpus)
