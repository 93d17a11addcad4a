"""`opea-chat doctor`: probe this machine, run every check, show the verdicts.

The probes (NVML, the Docker engine, registries, disks, RAM, ports, model files) run in
daemon threads against one deadline: a hung driver, a stalled engine or a slow network
becomes a "did not answer" finding and doctor still ends in about two seconds. The
verdicts come from ``launcher.checks`` and ``launcher.preflight``, the same that stop a
launch, so doctor and launch never disagree.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.markup import escape

from launcher import checks as verdicts
from launcher.checks import Check, Status, failed, passed, warned
from launcher.devices import llama_cpp_offloads
from launcher.docker_engine import DockerFacts
from launcher.errors import ConfigError
from launcher.gpu import GpuReport
from launcher.machine import Look, Probe, describe_failure
from launcher.paths import Paths
from launcher.preflight import (
    Ram,
    awaited_model,
    images_disk_check,
    llm_memory_target,
    model_download_disk,
    model_fit,
)
from launcher.private_files import fix_hint, private_roots, too_open
from launcher.runtime_choice import choose_runtime
from launcher.settings import Settings, load_settings, typed_value
from launcher.sizes import human_size
from models.catalogue import CATALOGUE
from models.formats import FORMATS, ModelFormat
from models.memory import estimate
from models.store import (
    LocalModel,
    ModelInfo,
    ModelNotPulledError,
    inspect_model,
    list_models,
    looks_like_path,
    resolve_model,
    unfinished_pulls,
)
from opea.errors import OpeaChatError

if TYPE_CHECKING:
    import docker

    from launcher.docker_plan import ContainerPlan

# Everything but --gpu-smoke must be done this long after the process started (imports
# included), so that doctor answers within 2 s; the probes get at least MIN_BUDGET.
FINISH_WITHIN = 1.6
MIN_BUDGET = 1.0
T = TypeVar("T")


_failure = describe_failure


@dataclass
class Findings:
    """What the probes found, for the verdicts."""

    settings: Settings
    gpus: GpuReport
    engine: DockerFacts
    client: docker.DockerClient | None


def _settings(paths: Paths, flags: Mapping[str, Any]) -> tuple[Settings, Check | None]:
    try:
        return load_settings(paths, flags=flags), None
    except ConfigError as error:
        fallback = Settings(**{k: typed_value(k, v, "flag") for k, v in flags.items()
                               if v is not None})
        return fallback, failed("settings", error.message,
                                error.hint or "fix the setting it names")


def probe_deadline(process_started: float | None) -> float:
    """When the probes must be done (time.monotonic()), counted from the process's start
    (wall clock, as psutil gives it) so that slow imports eat into the budget."""
    now = time.monotonic()
    if process_started is None:
        return now + FINISH_WITHIN
    left = process_started + FINISH_WITHIN - time.time()
    return now + max(MIN_BUDGET, left)


# -- models ----------------------------------------------------------------------------


def _parameters(count: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)


def describe_model(model: LocalModel, info: ModelInfo) -> str:
    """'GGUF v3 Q4_1, llama, 134.5M parameters, context 8192, 98.4 MB'."""
    from models.gguf import GGUFHeader

    if isinstance(info, GGUFHeader):
        kind = f"GGUF v{info.version} {info.quantization}"
    else:
        kind = f"Hugging Face folder ({len(info.shards)} safetensors shard"\
               f"{'s' if len(info.shards) > 1 else ''}, {info.dtype})"
    context = f"context {info.context_length}" if info.context_length else "context unknown"
    return (f"{kind}, {info.architecture}, {_parameters(info.parameter_count)} parameters, "
            f"{context}, {human_size(model.size_bytes)}")


def model_checks(models: list[LocalModel], settings: Settings, runtime: str,
                 gpus: GpuReport, ram: Ram | None) -> list[Check]:
    """One line per model in the models folder: what it is, whether it is whole, what it
    needs and which runtime serves it."""
    found = []
    for model in models:
        name = f"model {model.name}"
        try:
            info = inspect_model(model)
        except OpeaChatError as error:
            found.append(failed(name, error.message,
                                f"{error.hint or 'pull it again'}; or remove it with "
                                f"`opea-chat models rm {model.name}`"))
            continue
        detail = describe_model(model, info)
        model_format = FORMATS[model.format]
        serve = f"served by {model_format.served_by()}"
        if runtime not in model_format.runtimes:
            found.append(passed(name, f"{detail}; {serve} (not the {runtime} runtime)"))
            continue
        if ram is None:
            found.append(passed(name, f"{detail}; {serve}"))
            continue
        need = estimate(info.shape(), settings.context_size, model_format.server)
        fit = verdicts.fit_check(model.name, need, llm_memory_target(
            model.format, settings, runtime, gpus, ram), model_format.server)
        needs = f"needs about {human_size(need.total)}"
        if fit.status is Status.PASS:
            found.append(passed(name, f"{detail}; {needs}, fits; {serve}"))
        else:
            found.append(warned(name, f"{detail}; {needs}, which does not fit on the {runtime} "
                                      f"runtime here; {serve}", fit.fix or ""))
    return found


@dataclass(frozen=True)
class ChosenModel:
    """The model `launch` would serve: checked, not pulled yet, or broken."""

    model: LocalModel
    checks: list[Check]
    ready: bool  # its files were read and are whole


def chosen_model(settings: Settings, paths: Paths) -> ChosenModel:
    spec = settings.model
    try:
        model = resolve_model(spec, paths.models_dir)
    except ModelNotPulledError as missing:
        entry = missing.entry
        placeholder = awaited_model(entry, paths.models_dir)
        return ChosenModel(placeholder, [
            warned(f"model {entry.name}",
                   f"not pulled yet: launch will first download {human_size(entry.size_bytes)} "
                   f"from {entry.source.describe()}",
                   f"pull it now: `opea-chat models pull {entry.name}`"),
            model_download_disk(entry, paths.models_dir),
        ], ready=False)
    except OpeaChatError as error:
        path = Path(spec).expanduser()
        folder = looks_like_path(spec) and path.is_dir()
        model_format = ModelFormat.HF_FOLDER if folder else ModelFormat.GGUF
        placeholder = LocalModel(path.stem if looks_like_path(spec) else spec, path, 0,
                                 model_format)
        return ChosenModel(placeholder, [failed(f"model {placeholder.name}", error.message,
                                                error.hint or "choose another model")],
                           ready=False)
    return ChosenModel(model, [passed("disk models", f"{model.name} is already here; "
                                                     "nothing to download")], ready=True)


# -- the stack -------------------------------------------------------------------------


def ports_check(settings: Settings, model: LocalModel, runtime: str) -> Check:
    from launcher.plan import plan_stack
    from launcher.ports import is_port_free, pick_free_port

    try:
        plan = plan_stack(settings, model, is_port_free, pick_free_port, runtime)
    except OpeaChatError as error:
        name = "ports" if "port" in error.message else "stack"
        return failed(name, error.message, error.hint or "change the setting it names")
    ports = ", ".join(f"{service.name} {service.port}" for service in plan.services)
    if plan.notes:
        return warned("ports", f"on 127.0.0.1: {ports}; " + "; ".join(plan.notes),
                      "free those ports, or choose ports with --llm-port, --megaservice-port, "
                      "--app-port (launch would pick free ones itself)")
    return passed("ports", f"free on 127.0.0.1: {ports}")


def _container_plans(settings: Settings, paths: Paths, model: LocalModel, gpus: GpuReport) \
        -> list[ContainerPlan]:
    from launcher.docker_plan import container_plans, home_label
    from launcher.plan import plan_stack

    plan = plan_stack(settings, model, lambda port: True, lambda: 0, "docker")
    containers, _ = container_plans(plan, settings, "doctor", home_label(paths.state_dir),
                                    paths.models_dir, gpus)
    return containers


def rag_models_check(settings: Settings, paths: Paths, model: LocalModel) -> Check | None:
    """The embedding and reranker folders the rag containers read (launch refuses to pull
    any image without them, with the same words)."""
    from launcher.docker_plan import check_model_folders
    from launcher.plan import plan_stack

    plan = plan_stack(settings, model, lambda port: True, lambda: 0, "docker")
    if plan.profile == "chat":
        return None
    try:
        check_model_folders(plan, paths.models_dir)
    except OpeaChatError as error:
        return failed("models rag", error.message, error.hint or "")
    return passed("models rag", f"the embedding and reranker models are in {paths.models_dir}")


@dataclass(frozen=True)
class ImageFacts:
    local_size: int | None
    environment: list[str]


def _image_facts(client: docker.DockerClient, image: str) -> ImageFacts:
    import docker.errors

    try:
        found = client.images.get(image)
    except docker.errors.ImageNotFound:
        return ImageFacts(None, [])
    config = found.attrs.get("Config") or {}
    return ImageFacts(int(found.attrs.get("Size", 0)), list(config.get("Env") or []))


def docker_stack_checks(found: Findings, paths: Paths, model: LocalModel,
                        deadline: float) -> list[Check]:
    """GPU requests, images (here, or the download still needed), CUDA versions and the
    disk the images go to, for the containers the docker runtime would create."""
    from launcher.docker_plan import gpu_request
    from launcher.registry import download_size

    settings = found.settings
    try:
        containers = _container_plans(settings, paths, model, found.gpus)
    except OpeaChatError as error:
        return [failed("stack", error.message, error.hint or "change the setting it names")]
    checks = [gpu_request(containers, found.gpus, found.engine.nvidia_runtime)]
    folders = rag_models_check(settings, paths, model)
    if folders is not None:
        checks.append(folders)
    client = found.client
    if client is None:
        return checks
    images = {c.image: c.service for c in containers}
    known_cuda = {c.image: c.cuda_requirement for c in containers}
    here = {image: Probe(f"image {image}", partial(_image_facts, client, image))
            for image in images}
    facts: dict[str, ImageFacts | None] = {}
    for image, probe in here.items():
        try:
            facts[image] = probe.result(deadline)
        except BaseException as error:
            facts[image] = None
            checks.append(warned(f"image {images[image]}",
                                 f"cannot tell whether {image} is here: {_failure(error)}",
                                 "run doctor again"))
    missing = [image for image, fact in facts.items() if fact is not None and
               fact.local_size is None]
    timeout = max(0.2, deadline - time.monotonic())
    sizes = {image: Probe(f"registry {image}", partial(download_size, image, timeout))
             for image in missing}
    downloads: dict[str, int | None] = {}
    for image, size_probe in sizes.items():
        try:
            downloads[image] = size_probe.result(deadline)
        except BaseException:
            downloads[image] = None
    for image, fact in facts.items():
        if fact is None:
            continue
        service = images[image]
        checks.append(verdicts.image_check(service, image, fact.local_size,
                                           downloads.get(image), settings.pull))
        # The image's own NVIDIA_REQUIRE_CUDA once it is here; before, what the stack knows.
        requirement = verdicts.cuda_requirement(fact.environment) or known_cuda[image]
        cuda = verdicts.cuda_check(service, image, requirement, found.gpus)
        if cuda is not None:
            checks.append(cuda)
    if found.engine.root_dir is not None:
        checks.append(images_disk_check(found.engine.root_dir, downloads))
    return checks


def smoke_check(found: Findings, paths: Paths, model: LocalModel) -> Check:
    from launcher.docker_plan import (
        LABEL_HOME,
        LABEL_MANAGED,
        LABEL_SERVICE,
        home_label,
    )
    from launcher.gpu_smoke import gpu_smoke

    if found.client is None:
        return failed("gpu smoke", f"cannot run a GPU container: {found.engine.problem}",
                      "start Docker, then run doctor --gpu-smoke again")
    settings = found.settings if found.settings.gpus != "none" else \
        replace(found.settings, gpus="all")
    # The first container with a GPU request (the LLM's, in the chat profile) is the one
    # that has to work. With gpus forced off "none" the LLM always gets one.
    gpu_container = next(c for c in _container_plans(settings, paths, model, found.gpus)
                         if c.gpu_count is not None)
    image, count = gpu_container.image, gpu_container.gpu_count
    assert count is not None
    if _image_facts(found.client, image).local_size is None:
        return warned("gpu smoke", f"not run: its image {image} is not here yet",
                      f"pull it (`docker pull {image}`), then run doctor --gpu-smoke again")
    labels = {LABEL_MANAGED: "true", LABEL_HOME: home_label(paths.state_dir),
              LABEL_SERVICE: "gpu-smoke"}
    return gpu_smoke(found.client, image, count, labels)


# -- the whole run ---------------------------------------------------------------------


def hf_token_check(environ: Mapping[str, str]) -> Check:
    if environ.get("HF_TOKEN"):
        return passed("hf token", "HF_TOKEN is set (not shown); `models pull hf:...` sends it "
                                  "to the Hugging Face Hub")
    return passed("hf token", "HF_TOKEN is not set: `models pull hf:...` can pull public "
                              "models only")


def embedding_checks(settings: Settings, models_dir: Path, runtime: str) -> list[Check]:
    """The embedding models in the models folder (whole or not), and, for the local rag
    profile, the one launch would serve."""
    from models.embedding import (
        EMBEDDING_CATALOGUE,
        check_embedding_folder,
        list_embedding_models,
        local_embedding_model,
        resolve_embedding_model,
    )

    found = []
    wanted = None
    if settings.profile == "rag" and runtime == "local":
        wanted = local_embedding_model(settings.embedding_model,
                                       settings.is_default("embedding_model"))
    present = list_embedding_models(models_dir)
    for model in present:
        name = f"embedding {model.name}"
        try:
            check_embedding_folder(model.path)
        except OpeaChatError as error:
            found.append(failed(name, error.message, error.hint or ""))
            continue
        use = "; the rag profile's embedding service serves it" if \
            wanted is not None and model.name == wanted.lower() else ""
        found.append(passed(name, f"ONNX sentence-embedding model, "
                                  f"{human_size(model.size_bytes)}{use}"))
    if wanted is not None and not any(m.name == wanted.lower() for m in present):
        name = f"embedding {wanted}"
        if wanted.lower() in EMBEDDING_CATALOGUE:
            found.append(warned(name, f"not in {models_dir} yet; the rag profile needs it",
                                f"run `opea-chat models pull {wanted.lower()}`"))
        else:
            try:
                path = resolve_embedding_model(wanted, models_dir)
                found.append(passed(name, f"ONNX sentence-embedding model at {path}"))
            except OpeaChatError as error:
                found.append(failed(name, error.message, error.hint or ""))
    return found


def unfinished_check(models_dir: Path) -> Check | None:
    leftovers = unfinished_pulls(models_dir)
    if not leftovers:
        return None
    names = ", ".join(path.name for path in leftovers)
    return warned("unfinished pulls", f"{models_dir} holds what interrupted pulls left: {names}",
                  "run the same `opea-chat models pull` again to resume, or delete them")


def private_files_check(paths: Paths) -> Check:
    """Whether others may read opea-chat's folders (launch closes them; doctor only looks)."""
    roots = private_roots(paths)
    found = too_open(roots)
    if not found:
        shown = ", ".join(str(root) for root in roots if root.exists()) or "none yet"
        return passed("private files", f"only you can read opea-chat's folders ({shown})")
    more = f" and {len(found) - 1} more" if len(found) > 1 else ""
    return failed("private files", f"others may read {found[0]}{more}",
                  fix_hint(found, roots) + " (or run `opea-chat launch`, which does it)")


def _bounded(what: str, probe: Callable[[], T], deadline: float,
             otherwise: Callable[[str], T]) -> T:
    try:
        return Probe(what, probe).result(deadline)
    except BaseException as error:
        return otherwise(_failure(error))


def _chosen_model_checks(chosen: ChosenModel, settings: Settings, runtime: str,
                         gpus: GpuReport, ram: Ram | None) -> list[Check]:
    model = chosen.model
    found = list(chosen.checks)
    if chosen.ready:
        assert model.info is not None
        found.insert(0, passed(f"model {model.name}",
                               f"{describe_model(model, model.info)}; served by "
                               f"{FORMATS[model.format].served_by()}"))
        shape = model.info.shape()
        model_format = model.format
    elif (entry := CATALOGUE.get(model.name)) is not None:
        shape, model_format = entry.shape, entry.format
    else:
        return found
    if ram is not None and runtime in FORMATS[model_format].runtimes:
        found.insert(1, model_fit(model.name, shape, model_format, settings, runtime, gpus,
                                  ram))
    return found


def run_doctor(paths: Paths, flags: Mapping[str, Any], gpu_smoke: bool = False,
               process_started: float | None = None) -> list[Check]:
    """Every check, in the order a user reads them: the machine, the runtime, the stack,
    the model, the other models."""
    deadline = probe_deadline(process_started)
    look = Look(deadline, docker=True)
    settings, settings_problem = _settings(paths, flags)
    found_checks: list[Check] = [settings_problem] if settings_problem else []
    if settings.runtime == "remote":
        # Only the app runs here: the endpoint is what launch depends on.
        from launcher.remote import endpoint_checks

        return found_checks + endpoint_checks(settings, os.environ)
    # Loading llama.cpp overlaps with the machine's probes.
    offload_probe = Probe("llama.cpp", llama_cpp_offloads)
    facts = look.facts()
    gpus, docker_facts, client, ram = facts.gpus, facts.docker, facts.client, facts.ram
    found = Findings(settings, gpus, docker_facts, client)

    requested = settings.runtime
    runtime, reason = choose_runtime(requested, facts.for_runtime_choice()
                                     if requested == "auto" else None)
    found_checks += verdicts.gpu_checks(gpus)
    try:
        offloads: bool | None = offload_probe.result(deadline)
    except BaseException:
        offloads = None
    found_checks.append(verdicts.offload_check(offloads, gpus))
    found_checks.append(verdicts.docker_check(docker_facts, needed=runtime == "docker"))
    found_checks.append(verdicts.nvidia_runtime_check(docker_facts, gpus))
    found_checks.append(verdicts.runtime_check(requested, runtime, reason, gpus, docker_facts))

    def unreadable(why: str) -> ChosenModel:
        model = LocalModel(settings.model, Path(settings.model), 0)
        return ChosenModel(model, [warned(f"model {settings.model}", f"cannot read it: {why}",
                                          "check the models folder's disk")], ready=False)

    chosen = _bounded("the model", lambda: chosen_model(settings, paths), deadline,
                      unreadable)
    found_checks.append(ports_check(settings, chosen.model, runtime))
    if runtime == "docker":
        found_checks += docker_stack_checks(found, paths, chosen.model, deadline)
    found_checks.append(verdicts.ram_check(ram.total, ram.available) if ram is not None else
                        warned("ram", "cannot tell the free memory", "run doctor again"))

    found_checks += _chosen_model_checks(chosen, settings, runtime, gpus, ram)

    def others() -> list[Check]:
        # The model launch would serve has its own lines above, in launch's words.
        listed = [m for m in list_models(paths.models_dir)
                  if m.name.lower() != chosen.model.name.lower()
                  and m.path.resolve() != chosen.model.path.resolve()]
        return model_checks(listed, settings, runtime, gpus, ram)

    found_checks += _bounded("the models folder", others, deadline, lambda why: [
        warned("models", f"cannot read {paths.models_dir}: {why}", "check the folder")])
    found_checks += _bounded(
        "the embedding models", lambda: embedding_checks(settings, paths.models_dir, runtime),
        deadline, lambda why: [warned("embedding models", f"cannot read {paths.models_dir}: "
                                                          f"{why}", "check the folder")])
    unfinished = unfinished_check(paths.models_dir)
    if unfinished is not None:
        found_checks.append(unfinished)
    found_checks.append(_bounded(
        "opea-chat's folders", lambda: private_files_check(paths), deadline,
        lambda why: warned("private files", f"cannot read opea-chat's folders: {why}",
                           "check the folders' disk")))
    found_checks.append(hf_token_check(os.environ))

    if gpu_smoke:
        try:
            found_checks.append(smoke_check(found, paths, chosen.model))
        except OpeaChatError as error:
            found_checks.append(failed("gpu smoke", error.message, error.hint or ""))
    if client is not None:
        client.close()
    return found_checks


# -- showing the verdicts --------------------------------------------------------------

MARKS = {Status.PASS: "[green]pass[/]", Status.WARN: "[yellow]warn[/]",
         Status.FAIL: "[bold red]FAIL[/]"}


def render_text(checks: list[Check], console: Console, seconds: float) -> None:
    width = min(22, max(len(check.name) for check in checks))
    for check in checks:
        console.print(f"{MARKS[check.status]}  {escape(check.name):<{width}}  "
                      f"{escape(check.detail)}")
        if check.fix:
            console.print(f"{'':6}{'':<{width}}  fix: {escape(check.fix)}")
    counts = {status: sum(c.status is status for c in checks) for status in Status}
    console.print(f"{len(checks)} checks: {counts[Status.PASS]} passed, "
                  f"{counts[Status.WARN]} with warnings, {counts[Status.FAIL]} failed "
                  f"({seconds:.1f} s)")


def render_json(checks: list[Check]) -> str:
    return json.dumps([check.as_dict() for check in checks], indent=2)


def exit_code(checks: list[Check]) -> int:
    return 1 if any(check.status is Status.FAIL for check in checks) else 0
