"""`opea-chat export kubernetes`: the same stack as plain Kubernetes manifests.

Built from the same container plans as the docker runtime and the compose export (images,
commands, environment, GPU requests), so the three cannot drift apart. What Kubernetes needs
done differently:

- each service is a Deployment and a ClusterIP Service of the same name, so the names the
  containers already use for each other (``http://llm:8080``, ``redis://vector-db:6379``)
  resolve in the cluster as on the docker runtime's session network;
- start-up order (``waits_for``) becomes init containers that wait for each dependency's
  health check, and health becomes startup, readiness and liveness probes on the same paths;
- models live on a PersistentVolumeClaim mounted read-only at ``/models`` (docs/kubernetes.md
  says how to put the model there); the chat megaservice's code, which compose mounts from
  this checkout, comes from a ConfigMap;
- the chat app is left out: it stays on the user's desktop (``launch --runtime remote``), with
  its history;
- nothing is reachable from outside the cluster unless ``--expose`` asks for an Ingress or a
  LoadBalancer Service.

Pure apart from reading the model's header and the `opea` package's sources: objects are
plain dictionaries, validated by the tests against a real API server.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

import opea
from launcher import __version__
from launcher.compose import export_model
from launcher.docker_plan import ALL_GPUS, PROJECT_MOUNT, ContainerPlan, container_plans
from launcher.errors import ConfigError
from launcher.gpu import probe_gpus
from launcher.paths import Paths
from launcher.plan import PlannedService, plan_stack
from launcher.settings import Settings
from models.catalogue import CATALOGUE
from models.errors import ModelError
from models.formats import FORMATS
from models.memory import MIB, ModelShape, estimate
from models.store import LocalModel, inspect_model
from opea.stack import HealthKind, Role

EXPOSE_CHOICES = ("ingress", "loadbalancer")
# OPEA's images float on `latest`; a cluster must get the same image on every node and every
# restart, so an unchanged `tag` setting becomes this release (the one opea-comps is pinned to).
OPEA_RELEASE = "1.5"
MODELS_CLAIM = "opea-chat-models"
OPEA_CODE = "opea-chat-opea"
MODELS_MOUNT = "/models"
PART_OF = "opea-chat"
PROBE_PERIOD = 5
# Memory each service asks for (and twice that as its limit), where no estimate exists:
# measured or read from the images' documentation, erring high. The LLM's comes from
# models.memory.estimate instead.
MEMORY_MIB: dict[Role, int] = {
    Role.MEGASERVICE: 256,  # measured: ~90 MB RSS
    Role.VECTOR_DB: 512,
    Role.EMBEDDING: 1536,  # TEI with bge-base (440 MB of weights)
    Role.RERANKER: 1536,  # TEI with bge-reranker-base (1.1 GB of weights)
    Role.DATAPREP: 2048,  # loads an embedding model and document parsers at start
    Role.RETRIEVER: 2048,  # builds HuggingFaceEmbeddings at import
}
# The embedding and reranker folders the rag profile reads from the claim, for its size.
RAG_MODELS_BYTES = 2 << 30
WAIT_SCRIPT = """\
import socket, sys, time, urllib.request
for target in sys.argv[1:]:
    while True:
        try:
            if target.startswith("http"):
                urllib.request.urlopen(target, timeout=5).close()
            else:
                host, port = target.rsplit(":", 1)
                socket.create_connection((host, int(port)), timeout=5).close()
            break
        except Exception as error:
            print("waiting for", target, "-", error, flush=True)
            time.sleep(2)
"""


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}


def _metadata(name: str) -> dict[str, Any]:
    return {"name": name, "labels": {**_labels(name), "app.kubernetes.io/managed-by": PART_OF,
                                     "app.kubernetes.io/version": __version__}}


def check_image_tag(service: str, image: str) -> None:
    """Refuse a floating `latest` (named or implied): pods restarted a week apart on two
    nodes would run different code."""
    if "@" in image:
        return
    last = image.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    if not tag or tag == "latest":
        raise ConfigError(
            f"the {service} image {image} has no fixed tag ({tag or 'none, so latest'}); "
            "a cluster needs the same image on every node",
            hint=f"set the tag setting (e.g. OPEA_CHAT_TAG={OPEA_RELEASE}) for OPEA's images, "
                 f"or --image {service}=IMAGE:TAG",
        )


def quantity(size: str) -> str:
    """A docker size ("1g", "512m") as a Kubernetes quantity ("1Gi", "512Mi")."""
    match = re.fullmatch(r"(\d+)([kmg]?)b?", size.strip().lower())
    if not match:
        raise ConfigError(f"cannot read the size {size!r}")
    return match.group(1) + {"": "", "k": "Ki", "m": "Mi", "g": "Gi"}[match.group(2)]


def _mib(size: int) -> str:
    return f"{math.ceil(size / MIB)}Mi"


def model_shape(model: LocalModel) -> ModelShape:
    """The model's shape from its own files, or from the catalogue when not pulled here."""
    if model.path.exists():
        return inspect_model(model).shape()
    entry = CATALOGUE.get(model.name)
    if entry is None:
        raise ModelError(f"model {model.name} is not at {model.path}",
                         hint="pull it first: opea-chat models pull NAME")
    return entry.shape


def _probe(service: PlannedService) -> dict[str, Any]:
    if service.spec.health.kind is HealthKind.REDIS:
        return {"exec": {"command": ["redis-cli", "ping"]}}
    return {"httpGet": {"path": service.spec.health.path, "port": "http"}}


def _probes(service: PlannedService) -> dict[str, Any]:
    handler = _probe(service)
    common = {"periodSeconds": PROBE_PERIOD, "timeoutSeconds": 5}
    return {
        # Loading a model can take as long as the start timeout allows on the launcher.
        "startupProbe": {**handler, **common,
                         "failureThreshold": max(1, math.ceil(service.start_timeout
                                                              / PROBE_PERIOD))},
        "readinessProbe": {**handler, **common, "failureThreshold": 3},
        # A long answer keeps a CPU-bound server busy: a minute of silence before a restart.
        "livenessProbe": {**handler, "periodSeconds": 10, "timeoutSeconds": 5,
                          "failureThreshold": 6},
    }


def _wait_targets(service: PlannedService, services: dict[str, PlannedService]) -> list[str]:
    targets = []
    for name in service.spec.waits_for:
        dependency = services[name]
        container = dependency.spec.container
        assert container is not None
        if dependency.spec.health.kind is HealthKind.REDIS:
            targets.append(f"{name}:{container.port}")
        else:
            targets.append(f"http://{name}:{container.port}{dependency.spec.health.path}")
    return targets


def _resources(service: PlannedService, plan_gpus: int | None, llm_bytes: int) -> dict[str, Any]:
    need = llm_bytes if service.spec.role is Role.LLM else \
        MEMORY_MIB.get(service.spec.role, 512) * MIB
    # The LLM's estimate already errs high; others get room for a burst of documents.
    limit = int(need * 1.25) if service.spec.role is Role.LLM else need * 2
    resources: dict[str, Any] = {
        "requests": {"cpu": "500m", "memory": _mib(need)},
        "limits": {"memory": _mib(limit)},
    }
    if plan_gpus is not None:
        resources["limits"]["nvidia.com/gpu"] = plan_gpus
    return resources


def _gpus(service: PlannedService, container: ContainerPlan) -> int | None:
    """GPUs to ask for: only for a service that needs one and runs its GPU build (the
    reranker falls back to TEI's CPU image where TEI has no build for the GPU)."""
    if container.gpu_count is None:
        return None
    spec_container = service.spec.container
    assert spec_container is not None
    if spec_container.gpu_image and container.image == spec_container.image:
        return None
    # "all" means every GPU of one machine; a pod is placed on a node by the count it asks.
    return 1 if container.gpu_count == ALL_GPUS else container.gpu_count


def _deployment(service: PlannedService, container: ContainerPlan,
                services: dict[str, PlannedService], llm_bytes: int) -> dict[str, Any]:
    spec = service.spec
    assert spec.container is not None
    main: dict[str, Any] = {"name": service.name, "image": container.image,
                            "imagePullPolicy": "IfNotPresent"}
    if container.entrypoint:
        main["command"] = container.entrypoint
    if container.command:
        main["args"] = container.command
    if container.environment:
        main["env"] = [{"name": key, "value": value}
                       for key, value in container.environment.items()]
    port_name = "redis" if spec.health.kind is HealthKind.REDIS else "http"
    main["ports"] = [{"name": port_name, "containerPort": container.container_port}]
    main.update(_probes(service))
    main["resources"] = _resources(service, _gpus(service, container), llm_bytes)
    main["securityContext"] = {"allowPrivilegeEscalation": False}

    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    if spec.container.models_mount:
        mounts.append({"name": "models", "mountPath": spec.container.models_mount,
                       "readOnly": True})
        volumes.append({"name": "models", "persistentVolumeClaim": {
            "claimName": MODELS_CLAIM, "readOnly": True}})
    if spec.container.mounts_project:
        mounts.append({"name": "opea", "mountPath": PROJECT_MOUNT, "readOnly": True})
        volumes.append({"name": "opea", "configMap": {"name": OPEA_CODE}})
    if container.shm_size:
        # A shared-memory size (docker --shm-size): a memory-backed /dev/shm.
        mounts.append({"name": "shm", "mountPath": "/dev/shm"})  # noqa: S108
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory",
                                                    "sizeLimit": quantity(container.shm_size)}})
    if mounts:
        main["volumeMounts"] = mounts

    pod: dict[str, Any] = {
        # The services never talk to the Kubernetes API; no token to steal.
        "automountServiceAccountToken": False,
        # Service links would add variables such as LLM_PORT=tcp://... that OPEA's
        # components may read as their own settings.
        "enableServiceLinks": False,
        "containers": [main],
    }
    targets = _wait_targets(service, services)
    if targets and spec.container.health_tool == "python":
        # OPEA's components never check what they call at start: wait for it first.
        pod["initContainers"] = [{
            "name": "wait-for-" + "-".join(spec.waits_for),
            "image": container.image, "imagePullPolicy": "IfNotPresent",
            "command": ["python", "-c", WAIT_SCRIPT, *targets],
            "env": [{"name": "no_proxy", "value": "*"}],
            "securityContext": {"allowPrivilegeEscalation": False},
            "resources": {"requests": {"cpu": "50m", "memory": "32Mi"},
                          "limits": {"memory": "64Mi"}},
        }]
    if volumes:
        pod["volumes"] = volumes
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(service.name),
        "spec": {
            "replicas": 1,
            # One pod at a time: a rolling update would need a second GPU and the memory twice.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": _labels(service.name)},
            "template": {"metadata": {"labels": _labels(service.name)}, "spec": pod},
        },
    }


def _service(service: PlannedService, container: ContainerPlan,
             load_balancer: bool) -> dict[str, Any]:
    port_name = "redis" if service.spec.health.kind is HealthKind.REDIS else "http"
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": _metadata(service.name),
        "spec": {
            "type": "LoadBalancer" if load_balancer else "ClusterIP",
            "selector": _labels(service.name),
            "ports": [{"name": port_name, "port": container.container_port,
                       "targetPort": port_name, "protocol": "TCP"}],
        },
    }


def _ingress(megaservice: ContainerPlan) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": _metadata("megaservice"),
        "spec": {"rules": [{"http": {"paths": [{
            "path": "/v1", "pathType": "Prefix",
            "backend": {"service": {"name": "megaservice",
                                    "port": {"number": megaservice.container_port}}},
        }]}}]},
    }


def _claim(model_bytes: int, rag: bool) -> dict[str, Any]:
    wanted = (model_bytes + (RAG_MODELS_BYTES if rag else 0)) * 1.2
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _metadata(MODELS_CLAIM),
        "spec": {
            # ReadWriteOnce is what every storage class offers; pods on one node share it.
            # On several nodes, use a ReadWriteMany class (docs/kubernetes.md).
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": f"{max(1, math.ceil(wanted / (1 << 30)))}Gi"}},
        },
    }


def _opea_code() -> dict[str, Any]:
    package = Path(opea.__file__).resolve().parent
    return {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(OPEA_CODE),
        "data": {path.name: path.read_text(encoding="utf-8")
                 for path in sorted(package.glob("*.py"))},
    }


def kubernetes_objects(settings: Settings, paths: Paths,
                       expose: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Every object of the stack (in the order to create them), and notes for the user."""
    notes: list[str] = []
    if settings.tag == "latest" and settings.is_default("tag"):
        settings = replace(settings, tag=OPEA_RELEASE)
        notes.append(f"OPEA's images are pinned to release {OPEA_RELEASE} (the tag setting "
                     "chooses another)")
    if settings.gpus == "all":
        notes.append("each service that needs a GPU asks for one (nvidia.com/gpu: 1); "
                     "--gpus N asks for N, --gpus none for none")
    model = export_model(settings, paths)
    plan = plan_stack(settings, model, is_free=lambda port: True, pick_free=lambda: 0,
                      runtime="docker")
    containers, plan_notes = container_plans(plan, settings, session="kubernetes",
                                             home="kubernetes", models_dir=paths.models_dir,
                                             gpus=probe_gpus())
    notes += plan_notes
    by_service = {container.service: container for container in containers}
    for container in containers:
        check_image_tag(container.service, container.image)
    services = {service.name: service for service in plan.services}
    llm_bytes = estimate(model_shape(model), settings.context_size,
                         FORMATS[model.format].server).total

    objects: list[dict[str, Any]] = [_claim(model.size_bytes, settings.profile == "rag")]
    if any(c.mounts_project for s in plan.services if (c := s.spec.container)):
        objects.append(_opea_code())
    for service in plan.services:
        if service.spec.role is Role.UI:  # the app stays on the desktop
            continue
        container = by_service[service.name]
        objects.append(_deployment(service, container, services, llm_bytes))
        objects.append(_service(service, container, load_balancer=(
            expose == "loadbalancer" and service.spec.role is Role.MEGASERVICE)))
    if expose == "ingress":
        objects.append(_ingress(by_service["megaservice"]))
    return objects, notes


def header(settings: Settings, model: str, notes: list[str], expose: str | None) -> list[str]:
    reach = {
        None: ["Nothing is exposed outside the cluster. Reach the megaservice with",
               "  kubectl port-forward service/megaservice 8888:8888",
               "then: opea-chat launch --runtime remote --endpoint http://127.0.0.1:8888"],
        "ingress": ["The megaservice's /v1 API is exposed by an Ingress, WITHOUT"
                    " authentication:", "put TLS and a bearer-token check in front of it."],
        "loadbalancer": ["The megaservice is exposed by a LoadBalancer Service, WITHOUT"
                         " TLS or authentication:", "keep it on a private network."],
    }[expose]
    return [
        f"opea-chat {__version__}: the {settings.profile} profile as Kubernetes manifests.",
        f"Before the first start, copy the model {model} onto the claim {MODELS_CLAIM}",
        "(see docs/kubernetes.md, 'Putting the model on the volume').",
        *reach,
        *(f"Note: {note}" for note in notes),
    ]


class _Dumper(yaml.SafeDumper):
    """Plain YAML for people to read: no anchors for repeated probe handlers, and source
    files in the ConfigMap as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def _dump(documents: list[dict[str, Any]], comment: list[str]) -> str:
    lines = [f"# {line}" for line in comment]
    body = "---\n".join(yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=100)
                        for document in documents)
    return "\n".join(lines) + "\n" + body


def manifest_files(objects: list[dict[str, Any]], comment: list[str]) -> dict[str, str]:
    """One file per service (its Deployment and Service), plus the shared objects: for
    `-o DIR`; `kubectl apply -f DIR` takes them all."""
    files: dict[str, list[dict[str, Any]]] = {}
    for document in objects:
        kind, name = document["kind"], document["metadata"]["name"]
        file = {"PersistentVolumeClaim": "models", "ConfigMap": "opea-code",
                "Ingress": "expose"}.get(kind, name)
        files.setdefault(f"{file}.yaml", []).append(document)
    return {name: _dump(documents, comment) for name, documents in files.items()}


def manifest_text(objects: list[dict[str, Any]], comment: list[str]) -> str:
    return _dump(objects, comment)


def write_manifests(settings: Settings, paths: Paths, output: str | None,
                    expose: str | None) -> tuple[str | None, list[Path]]:
    """The manifests as text (no output given, or "-") or written to ``output``: a folder
    (one that exists, or a path ending in "/") gets one file per service."""
    objects, notes = kubernetes_objects(settings, paths, expose)
    comment = header(settings, export_model(settings, paths).path.name, notes, expose)
    if output in (None, "-"):
        return manifest_text(objects, comment), []
    assert output is not None
    target = Path(output)
    written: list[Path] = []
    try:
        if output.endswith("/") or target.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            for name, text in manifest_files(objects, comment).items():
                (target / name).write_text(text, encoding="utf-8")
                written.append(target / name)
        else:
            target.write_text(manifest_text(objects, comment), encoding="utf-8")
            written.append(target)
    except OSError as error:
        raise ConfigError(f"cannot write {output}: {error.strerror or error}",
                          hint="choose a folder or file you can write to with -o") from error
    return None, written
