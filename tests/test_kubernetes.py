"""`opea-chat export kubernetes`: what it writes is accepted by a real Kubernetes API server
(1.20, `kubectl apply --dry-run=server`) and by kubernetes-validate's schemas for a current
Kubernetes (1.33), for both profiles, with and without GPUs; a broken manifest is refused by
both, so the checks are not empty."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_mock import MockerFixture

from launcher.cli import main
from opea.stack import PROFILES
from tests.kube_apiserver import ApiServer, api_server
from tests.nvml import H200, fake_nvml

CURRENT_KUBERNETES = "1.33.0"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "kubernetes.md"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    # For this module only: later tests check that nothing they did not start is running.
    with api_server(tmp_path_factory.mktemp("kube")) as server:
        # No controller-manager runs to create it; pods are admitted against it.
        server.kubectl("create", "serviceaccount", "default")
        yield server


def export(tmp_path: Path, *flags: str) -> Path:
    out = tmp_path / "manifests"
    assert main(["export", "kubernetes", *flags, "-o", f"{out}/"]) == 0
    return out


def objects(folder: Path) -> list[dict[str, Any]]:
    return [document for path in sorted(folder.glob("*.yaml"))
            for document in yaml.safe_load_all(path.read_text()) if document]


def dry_run(cluster: ApiServer, target: Path) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("apply", "--dry-run=server", "-f", str(target))


def validate(*files: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).parent / "kubernetes-validate"
    return subprocess.run([str(tool), "-k", CURRENT_KUBERNETES, "--strict",
                           *map(str, files)], capture_output=True, text=True, check=False)


def resource(document: dict[str, Any]) -> str:
    """How kubectl names an object: deployment.apps/llm, service/llm."""
    group = document["apiVersion"].rpartition("/")[0]
    kind = document["kind"].lower() + (f".{group}" if group else "")
    return f"{kind}/{document['metadata']['name']}"


def containers(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]
            for d in documents if d["kind"] == "Deployment"}


@pytest.mark.parametrize("profile", ["chat", "rag"])
@pytest.mark.parametrize("gpus", ["none", "1"])
def test_the_export_is_accepted_by_a_real_api_server_and_current_schemas(
        profile: str, gpus: str, cluster: ApiServer, home_with_model: Path, tmp_path: Path,
        mocker: MockerFixture) -> None:
    # With a GPU, an H200 (mocked NVML): the reranker gets TEI's Hopper build and a GPU.
    fake_nvml(mocker, [H200] if gpus != "none" else [])
    folder = export(tmp_path, "--profile", profile, "--gpus", gpus)

    applied = dry_run(cluster, folder)
    assert applied.returncode == 0, applied.stderr
    documents = objects(folder)
    for document in documents:
        assert f"{resource(document)} created (server dry run)" in applied.stdout
    checked = validate(*sorted(folder.glob("*.yaml")))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # Every service but the app (it stays on the desktop), each with a Service.
    expected = {s.name for s in PROFILES[profile].services if s.name != "app"} | {"llm"}
    assert set(containers(documents)) == expected
    assert {d["metadata"]["name"] for d in documents if d["kind"] == "Service"} == expected
    for name, container in containers(documents).items():
        assert not container["image"].endswith(":latest") and ":" in container["image"]
        limits = container["resources"]["limits"]
        needs_gpu = gpus != "none" and name in {"llm", "reranking"}
        assert ("nvidia.com/gpu" in limits) == needs_gpu, name
    # Nothing reachable from outside the cluster unless asked.
    assert all(d["spec"]["type"] == "ClusterIP" for d in documents if d["kind"] == "Service")
    assert not [d for d in documents if d["kind"] == "Ingress"]


def test_probes_resources_and_models_come_from_the_stack(home_with_model: Path,
                                                         tmp_path: Path) -> None:
    documents = objects(export(tmp_path, "--gpus", "none", "--context-size", "8192"))
    llm = containers(documents)["llm"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert llm[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert containers(documents)["megaservice"]["readinessProbe"]["httpGet"]["path"] == \
        "/v1/health_check"
    # The memory estimate for SmolLM2 at 8192 tokens (doctor: 491 MB) is what it asks for.
    assert llm["resources"]["requests"]["memory"] == "469Mi"
    assert "/models/SmolLM2-135M-Instruct.Q4_1.gguf" in llm["args"]
    claim = next(d for d in documents if d["kind"] == "PersistentVolumeClaim")
    assert llm["volumeMounts"] == [{"name": "models", "mountPath": "/models", "readOnly": True}]
    assert claim["metadata"]["name"] == "opea-chat-models"
    # The chat megaservice runs opea-chat's own graph, shipped in a ConfigMap.
    code = next(d for d in documents if d["kind"] == "ConfigMap")
    assert "megaservice.py" in code["data"]
    assert containers(documents)["megaservice"]["image"] == "opea/chatqna:1.5"


@pytest.mark.parametrize(("expose", "kind"), [("ingress", "Ingress"),
                                              ("loadbalancer", "Service")])
def test_expose_makes_only_the_megaservice_reachable(expose: str, kind: str,
                                                     cluster: ApiServer, home_with_model: Path,
                                                     tmp_path: Path) -> None:
    folder = export(tmp_path, "--gpus", "none", "--expose", expose)
    applied = dry_run(cluster, folder)
    assert applied.returncode == 0, applied.stderr
    assert validate(*sorted(folder.glob("*.yaml"))).returncode == 0
    exposed = [d for d in objects(folder) if d["kind"] == "Ingress"
               or (d["kind"] == "Service" and d["spec"]["type"] != "ClusterIP")]
    assert [(d["kind"], d["metadata"]["name"]) for d in exposed] == [(kind, "megaservice")]


def test_a_broken_manifest_is_refused_by_the_server_and_the_schemas(
        cluster: ApiServer, home_with_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.yaml"
    assert main(["export", "kubernetes", "--gpus", "none", "-o", str(out)]) == 0
    text = out.read_text()
    broken = tmp_path / "broken.yaml"
    broken.write_text(text.replace("containerPort: 8080", "containerPort: eighty", 1))

    assert dry_run(cluster, out).returncode == 0
    refused = dry_run(cluster, broken)
    assert refused.returncode != 0
    assert "containerPort" in refused.stderr
    assert validate(out).returncode == 0
    assert validate(broken).returncode != 0


def test_the_documented_model_loader_pod_is_accepted(cluster: ApiServer, tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    loader = next(block for block in blocks if "opea-chat-models-loader" in block)
    path = tmp_path / "loader.yaml"
    path.write_text(loader)
    applied = dry_run(cluster, path)
    assert applied.returncode == 0, applied.stderr
    assert validate(path).returncode == 0


def test_a_floating_image_tag_is_refused_with_one_line(home_with_model: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    out = tmp_path / "all.yaml"
    code = main(["export", "kubernetes", "--image", "llm=ghcr.io/ggml-org/llama.cpp",
                 "-o", str(out)])
    error = capsys.readouterr().err
    assert code != 0 and not out.exists()
    assert error.startswith("Error: the llm image ghcr.io/ggml-org/llama.cpp has no fixed tag")
    assert error.count("\n") == 1 and "--image llm=IMAGE:TAG" in error


def test_an_explicit_latest_tag_setting_is_refused(home_with_model: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPEA_CHAT_TAG", "latest")
    assert main(["export", "kubernetes", "--gpus", "none"]) != 0
    assert "Error: the megaservice image opea/chatqna:latest has no fixed tag" in \
        capsys.readouterr().err


def test_an_output_that_cannot_be_written_is_one_line(home_with_model: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    code = main(["export", "kubernetes", "-o", str(tmp_path / "missing" / "all.yaml")])
    error = capsys.readouterr().err
    assert code != 0
    assert error == f"Error: cannot write {tmp_path / 'missing' / 'all.yaml'}: No such file " \
                    "or directory; choose a folder or file you can write to with -o\n"
