"""Which device runs the local runtime's model: the GPU, where the installed llama.cpp can
offload layers and the model fits the GPUs' free memory (the same fit check doctor and the
docker runtime use), otherwise the CPU, with the reason.

Pure but for ``llama_cpp_offloads`` (it loads llama.cpp): GPU facts come in as a
``GpuReport``, so every case is tested with NVML mocked.
"""

from __future__ import annotations

from dataclasses import dataclass

from launcher.checks import BUILD_HINT, Status, fit_check, memory_target
from launcher.gpu import GpuReport, describe_gpus
from models.memory import MemoryNeed, ModelShape, estimate
from models.store import LocalModel

# llama-cpp-python's value for "every layer".
ALL_LAYERS = -1
SERVER = "llama.cpp"


def llama_cpp_offloads() -> bool:
    """Whether the installed llama.cpp can put layers on a GPU (a CUDA build: see
    scripts/build-llama.sh). The portable CPU build cannot."""
    try:
        import llama_cpp

        return bool(llama_cpp.llama_supports_gpu_offload())
    except (ImportError, OSError, AttributeError):
        return False


@dataclass(frozen=True)
class Placement:
    gpu_layers: int  # ALL_LAYERS on the GPU, 0 on the CPU
    # Why the model stays on the CPU although there is a GPU (None: no GPU, or on it).
    reason: str | None = None

    @property
    def on_gpu(self) -> bool:
        return self.gpu_layers != 0


def model_need(model: LocalModel, context: int) -> MemoryNeed:
    """The model's memory need on llama.cpp; a model not read yet counts its file size as
    its weights (the KV cache then is a guess, see ``models.memory``)."""
    shape = model.info.shape() if model.info is not None else \
        ModelShape(weight_bytes=model.size_bytes)
    return estimate(shape, context, SERVER)


def place_model(gpus: GpuReport, offloads: bool, name: str, need: MemoryNeed | None
                ) -> Placement:
    """All layers on the GPUs when llama.cpp can offload and the model fits (tight counts
    as fitting, as for the docker runtime); else the CPU."""
    if not gpus.usable:
        return Placement(0)
    if not offloads:
        return Placement(0, "this llama.cpp was built for the CPU, so the GPU stays unused: "
                            f"{BUILD_HINT}, or use --runtime docker")
    if need is None:
        return Placement(ALL_LAYERS)
    check = fit_check(name, need, memory_target(SERVER, list(gpus.gpus), 0, 0), SERVER)
    if check.status is Status.FAIL:
        return Placement(0, f"the model runs on the CPU: {check.detail}")
    return Placement(ALL_LAYERS)


def describe_device(placement: Placement, gpus: GpuReport, cpu: str) -> str:
    """The Runtime line's device: "GPU: NVIDIA H200, 139 of 141 GB free" or "CPU: ...",
    with why a GPU that is there is not used."""
    if placement.on_gpu:
        return "GPU: " + describe_gpus(gpus)
    if placement.reason and gpus.usable:
        return f"CPU: {cpu} ({describe_gpus(gpus)} unused: {placement.reason})"
    return f"CPU: {cpu}"
