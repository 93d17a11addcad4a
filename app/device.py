"""Which device runs the model, for the model panel: NVIDIA GPUs (name and memory, read
through NVML) or the CPU. Never raises: probing a GPU must not break the page."""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GIB = 1024**3


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_total: int
    memory_used: int

    def describe(self) -> str:
        return (f"{self.name}, {self.memory_used / GIB:.1f} of "
                f"{self.memory_total / GIB:.1f} GiB used")


@dataclass(frozen=True)
class Device:
    gpus: tuple[Gpu, ...]
    cpu: str
    llm_uses_gpu: bool

    def describe(self) -> str:
        if self.llm_uses_gpu and self.gpus:
            return "GPU: " + "; ".join(gpu.describe() for gpu in self.gpus)
        return f"CPU: {self.cpu}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvidia_gpus() -> tuple[Gpu, ...]:
    try:
        import pynvml
    except ImportError:
        return ()
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return ()  # no driver, no GPU: the CPU it is
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(Gpu(_text(pynvml.nvmlDeviceGetName(handle)), int(memory.total),
                            int(memory.used)))
        return tuple(gpus)
    except pynvml.NVMLError:
        return ()
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count() or 1} threads"


def llama_cpp_offloads() -> bool:
    """Whether this machine's llama.cpp build can put layers on a GPU (a CUDA build)."""
    try:
        import llama_cpp

        return bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:  # no llama.cpp here at all: a remote or docker LLM
        return False


def detect_device(runtime: str | None) -> Device:
    """The local runtime runs llama.cpp here, on the GPU only if its build offloads; the
    docker runtime gives its LLM container the NVIDIA GPUs."""
    gpus = nvidia_gpus()
    uses_gpu = bool(gpus) and (llama_cpp_offloads() if runtime == "local" else True)
    return Device(gpus=gpus, cpu=cpu_name(), llm_uses_gpu=uses_gpu)
