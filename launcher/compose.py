"""`opea-chat export compose`: the same stack the docker runtime starts, as a compose file.

Built from the same container plans as the runtime, so the two cannot drift apart. Compose
has to do by itself what the launcher does in code: healthchecks and ``depends_on:
service_healthy`` gate each service on what it needs, ports stay on 127.0.0.1, and the app
runs as a container built from this project's Dockerfile.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

import launcher
from launcher import __version__
from launcher.docker_plan import ContainerPlan, container_plans, network_url
from launcher.gpu import probe_gpus
from launcher.paths import Paths
from launcher.plan import Placement, PlannedService, StackPlan, plan_stack
from launcher.settings import Settings
from models.catalogue import CATALOGUE
from models.store import LocalModel, ModelNotPulledError, resolve_model
from opea.stack import HealthKind

PROJECT_DIR = Path(launcher.__file__).resolve().parent.parent
HEALTH_INTERVAL = "5s"
# TEI's GPU image is built per compute capability: a file exported on one GPU type and run
# on another would fail ("Runtime compute cap ... is not compatible"), so the tag is a
# variable whose default is the tag for the GPU found at export.
TEI_TAG_VARIABLE = "TEI_GPU_TAG"


def export_model(settings: Settings, paths: Paths) -> LocalModel:
    """The model an export serves: pulled, or a catalogue model the server will find once
    copied to its models folder."""
    try:
        return resolve_model(settings.model, paths.models_dir)
    except ModelNotPulledError as missing:  # the file name is known; the server pulls it
        entry = CATALOGUE[missing.entry.name]
        return LocalModel(entry.name, paths.models_dir / entry.file_name, entry.size_bytes)


def healthcheck(service: PlannedService, container_port: int) -> dict[str, Any]:
    container = service.spec.container
    assert container is not None
    url = f"http://localhost:{container_port}{service.spec.health.path}"
    if service.spec.health.kind is HealthKind.REDIS:
        test = ["CMD", "redis-cli", "ping"]
    elif container.health_tool == "python":
        test = ["CMD", "python", "-c", f"import urllib.request; urllib.request.urlopen({url!r})"]
    else:
        test = ["CMD-SHELL", f"curl -fsS {url} >/dev/null || exit 1"]
    retries = max(1, int(service.start_timeout // 5))
    return {"test": test, "interval": HEALTH_INTERVAL, "timeout": "5s", "retries": retries,
            "start_period": "5s"}


def _service_entry(service: PlannedService, container: ContainerPlan) -> dict[str, Any]:
    entry: dict[str, Any] = {"image": container.image, "init": True}
    if container.entrypoint:
        entry["entrypoint"] = container.entrypoint
    if container.command:
        entry["command"] = container.command
    if container.environment:
        entry["environment"] = container.environment
    entry["ports"] = [f"127.0.0.1:{container.host_port}:{container.container_port}"]
    if container.mounts:
        entry["volumes"] = [f"{m.source}:{m.target}{':ro' if m.read_only else ''}"
                            for m in container.mounts]
    if container.shm_size:
        entry["shm_size"] = container.shm_size
    if container.gpu_count is not None:
        count: int | str = "all" if container.gpu_count < 0 else container.gpu_count
        entry["deploy"] = {"resources": {"reservations": {"devices": [
            {"driver": "nvidia", "count": count, "capabilities": ["gpu"]}]}}}
    if service.spec.needs:
        entry["depends_on"] = {name: {"condition": "service_healthy"}
                               for name in service.spec.needs}
    entry["healthcheck"] = healthcheck(service, container.container_port)
    return entry


def _app_entry(service: PlannedService, plan: StackPlan) -> dict[str, Any]:
    container = service.spec.container
    assert container is not None
    values = {**plan.values, "megaservice_url": network_url(plan.service("megaservice"))}
    entry: dict[str, Any] = {
        "image": container.image.format_map(values),
        "build": {"context": str(PROJECT_DIR)},
        "environment": {key: value.format_map(values) for key, value in container.environment},
        "ports": [f"127.0.0.1:{service.port}:{container.port}"],
        "depends_on": {name: {"condition": "service_healthy"}
                       for name in service.spec.needs},
        "healthcheck": healthcheck(service, container.port),
    }
    return entry


def _tei_tag_variable(container: ContainerPlan, plan: StackPlan, settings: Settings
                      ) -> ContainerPlan:
    spec = plan.service(container.service).spec.container
    assert spec is not None
    if container.gpu_count is None or not spec.gpu_image or "{tei_gpu_tag}" not in \
            spec.gpu_image or settings.images.get(container.service):
        return container
    tag = container.image.rpartition(":")[2]
    variable = f"${{{TEI_TAG_VARIABLE}:-{tag}}}"
    return replace(container, image=spec.gpu_image.replace("{tei_gpu_tag}", variable))


def compose_document(settings: Settings, paths: Paths) -> tuple[dict[str, Any], list[str]]:
    model = export_model(settings, paths)
    plan = plan_stack(settings, model, is_free=lambda port: True, pick_free=lambda: 0,
                      runtime="docker")
    containers, notes = container_plans(plan, settings, session="compose", home="compose",
                                        models_dir=paths.models_dir, gpus=probe_gpus())
    by_service = {container.service: _tei_tag_variable(container, plan, settings)
                  for container in containers}
    if any(TEI_TAG_VARIABLE in c.image for c in by_service.values()):
        notes.append(f"the reranker's TEI image tag fits this machine's GPU; on another GPU "
                     f"set {TEI_TAG_VARIABLE} (turing-1.9, 1.9, 86-1.9, 89-1.9, hopper-1.9, "
                     "100-1.9, 120-1.9 or cuda-1.9)")
    services: dict[str, Any] = {}
    for service in plan.services:
        # What the launcher runs as a process (the app) is built from the project here.
        if service.placement is Placement.PROCESS:
            services[service.name] = _app_entry(service, plan)
        else:
            services[service.name] = _service_entry(service, by_service[service.name])
    return {"services": services}, notes


def compose_file(settings: Settings, paths: Paths) -> str:
    document, notes = compose_document(settings, paths)
    header = [
        f"# opea-chat {__version__}: the {settings.profile} profile as a docker compose file.",
        f"# Models are read from {paths.models_dir} (mounted read-only at /models); the chat",
        f"# megaservice mounts opea-chat's `opea` package from {PROJECT_DIR / 'opea'}.",
        "# Copy both along when moving this file, and fix the paths below.",
        "# Every port is published on 127.0.0.1 only.",
        *(f"# Note: {note}" for note in notes),
    ]
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=100)
    return "\n".join(header) + "\n" + body
