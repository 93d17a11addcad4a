"""Verdicts: from facts about this machine and the stack to one ``Check`` each.

Pure functions: the probes (NVML, Docker, disks, ports, model files) run elsewhere and hand
their findings in, so every verdict is tested without a GPU, and ``opea-chat doctor`` and
``opea-chat launch`` reach the same verdict with the same words. Launch turns a failing check
that would doom it into the error that stops it (``require``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from launcher.docker_engine import DockerFacts
from launcher.gpu import PERSISTENCE_HINT, SLOW_INIT, Gpu, GpuReport
from launcher.sizes import human_size
from models.memory import CUDA_CONTEXT_BYTES, MemoryNeed
from opea.errors import OpeaChatError

TOOLKIT_HINT = ("install nvidia-container-toolkit, run `sudo nvidia-ctk runtime configure "
                "--runtime=docker` and restart Docker; or use --gpus none")
DRIVER_HINT = "install the NVIDIA driver (then `nvidia-smi` lists the GPU)"
# Docker keeps each image's compressed layers' unpacked contents; unpacked layers take
# about twice their download (measured on OPEA's images: 1.9x to 2.4x).
UNPACK_FACTOR = 2
# Below this much room left after a download, the disk counts as nearly full.
DISK_MARGIN = 2 * 10**9
# A model whose estimate exceeds this share of the memory it gets is "tight".
TIGHT_SHARE = 0.9
LOW_RAM = 2 * 10**9
# What the rag profile's reranker (TEI with bge-reranker-base, 278M parameters, in fp16 on a
# GPU: 0.56 GB) takes on the GPU before the LLM starts, with its CUDA context and batch
# buffers; errs high, like every estimate here.
RERANKER_VRAM = 2 * 1024**3


class Status(StrEnum):
    PASS = "pass"  # noqa: S105 (a verdict, not a password)
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": str(self.status), "detail": self.detail,
                "fix": self.fix}


def passed(name: str, detail: str) -> Check:
    return Check(name, Status.PASS, detail)


def warned(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.WARN, detail, fix)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.FAIL, detail, fix)


def require(check: Check, error: type[OpeaChatError]) -> Check:
    """Launch's use of a verdict: a failing check stops it, with the same finding and fix."""
    if check.status is Status.FAIL:
        raise error(check.detail, hint=check.fix)
    return check


# -- GPUs ------------------------------------------------------------------------------


def describe_gpu(gpu: Gpu) -> str:
    major, minor = gpu.compute_capability
    return (f"{gpu.name}, compute capability {major}.{minor}, "
            f"{human_size(gpu.memory_free)} free of {human_size(gpu.memory_total)}")


def gpu_checks(report: GpuReport) -> list[Check]:
    """The driver, then one line per GPU (and one per GPU that did not answer). No GPU is a
    warning, not a failure: the local runtime needs none."""
    skipped = [warned(f"gpu {gpu.index}", f"skipped: {gpu.why}",
                      "see `nvidia-smi`; a lost GPU needs a reset (`nvidia-smi -r`) or a "
                      "reboot") for gpu in report.skipped]
    if report.slow:
        return [warned("gpu", f"{report.problem}; that is not \"no GPU\": the first call "
                              "after a while can take seconds without persistence mode",
                       f"{PERSISTENCE_HINT}, then run doctor again")]
    if report.problem is not None and not report.gpus:
        return [warned("gpu", f"no usable NVIDIA GPU: {report.problem}",
                       f"to use a GPU, {DRIVER_HINT}; without one, the local runtime runs "
                       "models on the CPU"), *skipped]
    count = len(report.gpus)
    detail = (f"NVIDIA driver {report.driver_version}, supports CUDA up to "
              f"{report.cuda_version}; {count} GPU{'s' if count > 1 else ''}")
    if report.init_seconds is not None and report.init_seconds >= SLOW_INIT:
        checks = [warned("gpu", f"{detail}; NVML took {report.init_seconds:.1f} s to answer",
                         PERSISTENCE_HINT)]
    else:
        checks = [passed("gpu", detail)]
    checks += [passed(f"gpu {gpu.index}", describe_gpu(gpu)) for gpu in report.gpus]
    return checks + skipped


BUILD_HINT = ("rebuild llama.cpp with CUDA: `scripts/build-llama.sh` on a machine with nvcc "
              "and the driver (then `scripts/install.sh`)")


def offload_check(offloads: bool | None, gpus: GpuReport) -> Check:
    """Can the installed llama.cpp (the local runtime's LLM server) put layers on a GPU?
    ``offloads`` None: loading llama.cpp did not answer in time."""
    name = "llama.cpp"
    if offloads is None:
        return warned(name, "cannot tell whether this llama.cpp build can use a GPU: loading "
                            "it did not answer in time", "run doctor again")
    if offloads:
        where = "the local runtime runs the model on the GPU where it fits" if gpus.usable \
            else "but there is no usable GPU here"
        return passed(name, f"this llama.cpp build can offload layers to a GPU (CUDA); {where}")
    if gpus.usable:
        return warned(name, "this llama.cpp build runs on the CPU only: the local runtime "
                            "leaves the GPU unused", BUILD_HINT + "; or use --runtime docker")
    return passed(name, "this llama.cpp build runs on the CPU (no GPU here to offload to)")


# -- Docker ----------------------------------------------------------------------------


def docker_check(facts: DockerFacts, needed: bool) -> Check:
    """``needed``: the chosen runtime is docker, so an unreachable engine dooms a launch."""
    if facts.reachable:
        return passed("docker", f"engine {facts.version} (API {facts.api_version}) answers")
    fix = "start Docker (e.g. `sudo systemctl start docker`)"
    if needed:
        return failed("docker", f"the docker runtime needs Docker: {facts.problem}",
                      fix + ", or use --runtime local")
    return warned("docker", f"{facts.problem}; the docker runtime is unavailable",
                  fix + " to use the docker runtime")


def nvidia_runtime_check(facts: DockerFacts, gpus: GpuReport) -> Check:
    if not facts.reachable:
        if not gpus.usable:
            return passed("nvidia runtime", "not checked: Docker does not answer, and without "
                                            "an NVIDIA GPU it is not needed")
        return warned("nvidia runtime", "unknown: Docker does not answer, so it cannot say "
                                        "whether it can give containers the GPU",
                      "start Docker, then run doctor again")
    if facts.nvidia_runtime:
        found = ["runtime `nvidia`"] if "nvidia" in facts.runtimes else []
        found += [f"CDI spec {spec}" for spec in facts.cdi_specs]
        return passed("nvidia runtime", "Docker can give containers GPUs: " + ", ".join(found))
    runtimes = ", ".join(facts.runtimes) or "none"
    if gpus.usable:
        # The complaint users raise most: a GPU that is there but silently unused.
        return failed("nvidia runtime",
                      f"this machine has {len(gpus.gpus)} NVIDIA GPU(s) but Docker cannot use "
                      f"them: no `nvidia` runtime (runtimes: {runtimes}) and no NVIDIA CDI "
                      "spec in /etc/cdi or /var/run/cdi", TOOLKIT_HINT)
    return passed("nvidia runtime", f"not set up (runtimes: {runtimes}); not needed without an "
                                    "NVIDIA GPU")


def runtime_check(requested: str, chosen: str, reason: str, gpus: GpuReport,
                  facts: DockerFacts) -> Check:
    """Which runtime `launch` would use, and whether a GPU would sit unused."""
    detail = f"launch --runtime {requested} would use the {chosen} runtime: {reason}"
    if chosen == "local" and gpus.usable:
        names = ", ".join(gpu.name for gpu in gpus.gpus)
        if requested == "local":
            return warned("runtime", f"{detail}; the LLM runs on the CPU although this "
                                     f"machine has {names}",
                          "use --runtime docker (or auto) to run it on the GPU")
        fix = TOOLKIT_HINT.removesuffix("; or use --gpus none") if facts.reachable and \
            not facts.nvidia_runtime else "start Docker"
        return warned("runtime", f"{detail}; so {names} would go unused", fix)
    return passed("runtime", detail)


def gpu_request_check(needing: list[str], wanted: int | None, gpus: GpuReport,
                      nvidia_runtime: bool) -> Check:
    """Can Docker give the services in ``needing`` the GPUs they ask for (``wanted``: a
    number, or None for all)?"""
    if not needing:
        return passed("gpu request", "no service of the stack asks for a GPU")
    who = " and ".join(needing)
    if not gpus.usable:
        return failed("gpu request",
                      f"the {who} service needs an NVIDIA GPU, but none is usable: "
                      f"{gpus.problem}",
                      "install the NVIDIA driver, or run on the CPU with --gpus none "
                      "(or --runtime local)")
    if not nvidia_runtime:
        return failed("gpu request",
                      f"the {who} service needs an NVIDIA GPU, but Docker has no NVIDIA "
                      "runtime: the NVIDIA Container Toolkit is not installed or not "
                      "configured", TOOLKIT_HINT)
    if wanted is not None and wanted > len(gpus.gpus):
        return failed("gpu request",
                      f"--gpus {wanted} asks for more GPUs than the {len(gpus.gpus)} this "
                      "machine has", "use --gpus all, or a smaller number")
    count = len(gpus.gpus) if wanted is None else wanted
    return passed("gpu request", f"the {who} service gets {count} GPU(s)")


def cuda_requirement(environment: list[str]) -> str | None:
    """An image's ``NVIDIA_REQUIRE_CUDA``, which the NVIDIA runtime enforces when the
    container starts (None: the image sets none)."""
    for entry in environment:
        name, _, value = entry.partition("=")
        if name == "NVIDIA_REQUIRE_CUDA" and value.strip():
            return value.strip()
    return None


def _version(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return None


_CONSTRAINT = re.compile(r"^(?:(cuda|driver|arch|brand))?\s*(>=|<=|!=|=|<|>)\s*(\S+)$")
_COMPARE = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    "<": lambda a, b: a < b, "=": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


def _pad(left: tuple[int, ...], right: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    width = max(len(left), len(right))
    return left + (0,) * (width - len(left)), right + (0,) * (width - len(right))


def _holds(key: str, operator: str, wanted: str, gpus: GpuReport, gpu: Gpu | None
           ) -> bool | None:
    """One constraint on this machine: True, False, or None where the fact is unknown."""
    if key == "brand":
        if gpu is None or gpu.brand is None:
            return None
        return _COMPARE[operator](gpu.brand, wanted.lower()) if operator in ("=", "!=") \
            else None
    have = {"cuda": gpus.cuda_version, "driver": gpus.driver_version,
            "arch": None if gpu is None else
            f"{gpu.compute_capability[0]}.{gpu.compute_capability[1]}"}[key]
    left, right = _version(have), _version(wanted)
    if left is None or right is None:
        return None
    return bool(_COMPARE[operator](*_pad(left, right)))


def _clause_holds(clause: str, gpus: GpuReport, gpu: Gpu | None) -> bool | None:
    """Comma-separated constraints, all of which must hold. A bare comparison (``<471``)
    continues the key before it, as in ``driver>=470,<471``."""
    result: bool | None = True
    key = "cuda"
    for part in clause.split(","):
        match = _CONSTRAINT.match(part.strip())
        if match is None:
            return None
        key = match.group(1) or key
        holds = _holds(key, match.group(2), match.group(3), gpus, gpu)
        if holds is False:
            return False
        if holds is None:
            result = None
    return result


def requirement_verdict(requirement: str, gpus: GpuReport) -> tuple[bool | None, str]:
    """Evaluate ``NVIDIA_REQUIRE_CUDA`` as the NVIDIA container toolkit does: clauses
    separated by spaces are alternatives (any one suffices), constraints joined by commas
    within a clause must all hold; every GPU given must satisfy it. Returns the verdict
    (None: cannot tell) and the clause it rests on."""
    clauses = requirement.split()
    targets: list[Gpu | None] = list(gpus.gpus) or [None]
    unknown: list[str] = []
    for clause in clauses:
        verdicts = [_clause_holds(clause, gpus, gpu) for gpu in targets]
        if all(verdict is True for verdict in verdicts):
            return True, clause
        if any(verdict is None for verdict in verdicts):
            unknown.append(clause)
    if unknown:
        return None, unknown[0]
    return False, clauses[0] if clauses else requirement


def cuda_check(service: str, image: str, requirement: str | None,
               gpus: GpuReport) -> Check | None:
    """Will the NVIDIA runtime accept the image's ``NVIDIA_REQUIRE_CUDA`` on this driver?"""
    if requirement is None or gpus.cuda_version is None:
        return None
    name = f"cuda {service}"
    holds, clause = requirement_verdict(requirement, gpus)
    driver = f"NVIDIA driver {gpus.driver_version} (CUDA up to {gpus.cuda_version})"
    needs = f"{image} needs {clause}" if holds else f"{image} needs {requirement.split()[0]}"
    if holds:
        return passed(name, f"{needs}; {driver} meets it")
    if holds is None:
        return warned(name, f"{image} asks for `{requirement}`; whether {driver} meets "
                            f"`{clause}` cannot be told here",
                      "run doctor --gpu-smoke to try a real GPU container")
    return failed(name, f"{needs} but {driver} meets none of `{requirement}`: the container "
                        "would refuse to start",
                  f"update the NVIDIA driver to one that supports {requirement.split()[0]}, "
                  f"or choose an image built for CUDA {gpus.cuda_version} "
                  f"(--image {service}=...)")


# -- images ----------------------------------------------------------------------------


def image_check(service: str, image: str, local_size: int | None, download: int | None,
                policy: str) -> Check:
    """``local_size`` None: not on this machine; ``download``: what the registry says a
    pull downloads (None: it could not be asked)."""
    name = f"image {service}"
    if local_size is not None and policy != "always":
        return passed(name, f"{image} is here ({human_size(local_size)})")
    if local_size is not None:
        return passed(name, f"{image} is here ({human_size(local_size)}); --pull always "
                            f"checks for a newer one")
    size = f"{human_size(download)} to download" if download is not None else \
        "download size unknown: its registry did not answer"
    if policy == "never":
        return failed(name, f"{image} is not here and --pull never forbids pulling it "
                            f"({size})",
                      f"pull it (`docker pull {image}`), or launch with --pull missing")
    return warned(name, f"{image} is not here; launch will pull it first ({size})",
                  f"pull it now, while you wait for nothing else: `docker pull {image}`")


# -- disks and memory ------------------------------------------------------------------


def disk_check(name: str, where: Path, free: int | None, need: int, what: str) -> Check:
    """``need`` bytes of ``what`` go to the disk holding ``where`` (``free`` on it)."""
    if free is None:
        return warned(name, f"cannot tell the free space at {where}",
                      "check it yourself with `df -h`")
    room = f"{human_size(free)} free at {where}"
    if need <= 0:
        return passed(name, f"{room}; nothing to download")
    needs = f"{what} needs about {human_size(need)}"
    if free < need:
        return failed(name, f"{needs} but only {room}",
                      f"free at least {human_size(need - free)} there, or move it to a bigger "
                      "disk")
    if free - need < DISK_MARGIN:
        return warned(name, f"{needs}; {room}, which leaves less than "
                            f"{human_size(DISK_MARGIN)}", "free some space there")
    return passed(name, f"{needs}; {room}")


def data_disk_check(where: Path, free: int | None, warn_below: int) -> Check:
    """The disk of the data folder, where the chat history is written at every turn."""
    name = "disk data"
    if free is None:
        return warned(name, f"cannot tell the free space at {where}",
                      "check it yourself with `df -h`")
    room = f"{human_size(free)} free at {where}"
    if free < warn_below:
        return warned(name, f"only {room}, less than {human_size(warn_below)} "
                            "(data_disk_warn_mb); on a full disk the chat history cannot save "
                            "conversations", "free some space on that disk")
    return passed(name, f"{room} for the chat history")


def ram_check(total: int, available: int) -> Check:
    detail = f"{human_size(available)} available of {human_size(total)}"
    if available < LOW_RAM:
        return warned("ram", detail, "close other programs: models on the CPU, the app and "
                                     "OPEA's services need memory")
    return passed("ram", detail)


@dataclass(frozen=True)
class MemoryTarget:
    """The memory a model will run in: free VRAM of the GPUs the LLM gets, or RAM."""

    kind: str  # "VRAM" or "RAM"
    available: int
    where: str
    # What the memory would be with nothing else using it (total VRAM), for the fix.
    total: int


def memory_target(server: str, gpus_for_llm: list[Gpu] | None, ram_available: int,
                  ram_total: int, reserved: int = 0) -> MemoryTarget:
    """``gpus_for_llm`` None: the model runs in RAM. llama.cpp spreads layers over every GPU
    it is given; TGI shards evenly (one shard per GPU, ``--num-shard``), so the GPU with the
    least free memory bounds it. ``reserved``: what another service of the stack takes on
    the first GPU before the LLM starts (the reranker, in the rag profile)."""
    if not gpus_for_llm:
        return MemoryTarget("RAM", ram_available, "RAM", ram_total)
    if reserved:
        first = gpus_for_llm[0]
        gpus_for_llm = [replace(first, memory_free=max(0, first.memory_free - reserved),
                                memory_total=max(0, first.memory_total - reserved)),
                        *gpus_for_llm[1:]]
    count = len(gpus_for_llm)
    overhead = CUDA_CONTEXT_BYTES * count
    if server == "TGI":
        available = min(g.memory_free for g in gpus_for_llm) * count - overhead
        total = min(g.memory_total for g in gpus_for_llm) * count - overhead
    else:
        available = sum(g.memory_free for g in gpus_for_llm) - overhead
        total = sum(g.memory_total for g in gpus_for_llm) - overhead
    names = ", ".join(f"{g.name} ({human_size(g.memory_free)} free)" for g in gpus_for_llm)
    return MemoryTarget("VRAM", max(0, available), f"VRAM of {names}", max(0, total))


def gpus_for_llm(runtime: str, llm_needs_gpu: bool, gpus_setting: str,
                 gpus: GpuReport) -> list[Gpu] | None:
    """The GPUs the LLM's container is given, or None when it runs on the CPU."""
    if runtime != "docker" or not llm_needs_gpu or gpus_setting == "none" or not gpus.usable:
        return None
    if gpus_setting == "all":
        return list(gpus.gpus)
    return list(gpus.gpus[:int(gpus_setting)])


def context_that_fits(need: MemoryNeed, target: MemoryTarget) -> int | None:
    """The largest context (a multiple of 256 tokens) whose KV cache fits beside the
    weights, when a smaller context is what would make the model fit; never more than the
    model's own context (a model trained for 8192 tokens gains nothing from more)."""
    if not need.context or not need.kv_cache:
        return None
    per_token = need.kv_cache / need.context
    room = target.available * TIGHT_SHARE - need.weights - need.overhead
    context = int(room // per_token) // 256 * 256
    if need.model_context:
        context = min(context, need.model_context // 256 * 256)
    return context if 256 <= context < need.context else None


def fit_check(model: str, need: MemoryNeed, target: MemoryTarget, server: str) -> Check:
    """Does the model fit the memory it will run in?"""
    name = f"fit {model}"
    needs = (f"{model} needs about {human_size(need.total)} on {server} (weights "
             f"{human_size(need.weights)}, KV cache {human_size(need.kv_cache)} for "
             f"{need.context} tokens, buffers {human_size(need.overhead)})")
    room = f"{human_size(target.available)} {target.kind} available" + \
        (f" ({target.where})" if target.kind == "VRAM" else "")
    if need.total <= target.available * TIGHT_SHARE:
        return passed(name, f"{needs}; fits in {room}")
    fixes = []
    if target.kind == "VRAM" and need.total <= target.total:
        fixes.append("free GPU memory (`nvidia-smi` shows which processes use it)")
    context = context_that_fits(need, target)
    if context is not None:
        fixes.append(f"lower the context to {context} tokens (--context-size {context})")
    fixes.append("use a smaller or more quantized model")
    if target.kind == "VRAM":
        fixes.append("or run it in RAM with --gpus none")
    fix = "; ".join(fixes)
    if need.total <= target.available:
        return warned(name, f"{needs}; that is tight in {room}", fix)
    return failed(name, f"{needs}, more than the {room}", fix)

