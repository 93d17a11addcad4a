"""The containers the docker runtime would create, planned without an engine or a GPU:
device requests, image choice per GPU, loopback ports, read-only mounts, labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from launcher.docker_plan import (
    ALL_GPUS,
    LABEL_HOME,
    LABEL_MANAGED,
    LABEL_SERVICE,
    LABEL_SESSION,
    ContainerPlan,
    check_gpu_request,
    container_plans,
)
from launcher.errors import ConfigError, GpuUnavailableError
from launcher.gpu import Gpu, GpuReport
from launcher.paths import resolve_paths
from launcher.plan import plan_stack
from launcher.runtime_choice import Machine, choose_runtime
from launcher.settings import load_settings
from models.errors import ModelError
from models.formats import ModelFormat
from models.store import LocalModel
from opea.stack import TEI_GPU_TAGS, tei_gpu_tag

GIB = 1 << 30


def gpu(cc: tuple[int, int] = (9, 0), name: str = "NVIDIA H200", free: int = 140) -> Gpu:
    return Gpu(index=0, name=name, compute_capability=cc, memory_total=141 * GIB,
               memory_free=free * GIB)


ONE_GPU = GpuReport(gpus=(gpu(),), driver_version="565.57", cuda_version="12.7")
NO_GPU = GpuReport(problem="no NVIDIA driver found (the NVML library libnvidia-ml is missing)")


def plans(home: Path, flags: dict[str, object] | None = None, model: LocalModel | None = None,
          gpus: GpuReport = ONE_GPU) -> tuple[dict[str, ContainerPlan], list[str]]:
    paths = resolve_paths()
    settings = load_settings(paths, {}, flags=flags or {})
    model = model or LocalModel("smollm2-135m", paths.models_dir / "smol.gguf", 1)
    plan = plan_stack(settings, model, lambda port: True, lambda: 40000, runtime="docker")
    containers, notes = container_plans(plan, settings, "s1", "h1", paths.models_dir, gpus)
    return {c.service: c for c in containers}, notes


def test_chat_profile_containers_on_a_gpu(home: Path) -> None:
    containers, notes = plans(home)
    assert sorted(containers) == ["llm", "megaservice"]  # the app runs as a local process
    llm, mega = containers["llm"], containers["megaservice"]
    assert llm.image == "ghcr.io/ggml-org/llama.cpp:server-cuda"
    assert llm.gpu_count == ALL_GPUS and mega.gpu_count is None
    assert llm.ports == {"8080/tcp": ("127.0.0.1", 9009)}
    assert mega.ports == {"8888/tcp": ("127.0.0.1", 8888)}
    assert "--n-gpu-layers" in llm.command and llm.command[llm.command.index("--n-gpu-layers")
                                                        + 1] == "999"
    assert llm.command[:2] == ["--model", "/models/smol.gguf"]
    assert [(m.source, m.target, m.read_only) for m in llm.mounts] == [
        (str(home / "models"), "/models", True)]
    assert mega.entrypoint == ["python"]
    assert mega.command[-4:] == ["--llm-url", "http://llm:8080", "--model", "smollm2-135m"]
    assert mega.mounts[0].target == "/home/user/opea-chat/opea" and mega.mounts[0].read_only
    assert llm.labels == {LABEL_MANAGED: "true", LABEL_HOME: "h1", LABEL_SESSION: "s1",
                          LABEL_SERVICE: "llm"}
    assert llm.name == "opea-chat-s1-llm"
    assert notes == []


@pytest.mark.parametrize("gpus,expected", [("all", ALL_GPUS), ("2", 2), ("none", None)])
def test_gpus_flag_sets_device_requests_only_for_gpu_services(
        home: Path, gpus: str, expected: int | None) -> None:
    containers, _ = plans(home, {"gpus": gpus, "profile": "rag"})
    assert containers["llm"].gpu_count == expected
    assert containers["reranking"].gpu_count == expected
    for cpu_service in ("megaservice", "vector-db", "embedding", "dataprep", "retriever"):
        assert containers[cpu_service].gpu_count is None


def test_without_gpus_the_cpu_images_are_used(home: Path) -> None:
    containers, _ = plans(home, {"gpus": "none", "profile": "rag"})
    assert containers["llm"].image == "ghcr.io/ggml-org/llama.cpp:server"
    assert containers["llm"].command[containers["llm"].command.index("--n-gpu-layers") + 1] == "0"
    assert containers["reranking"].image.endswith(":cpu-1.6")


@pytest.mark.parametrize("cc,tag", sorted(TEI_GPU_TAGS.items()))
def test_reranker_image_follows_compute_capability(home: Path, cc: tuple[int, int],
                                                   tag: str) -> None:
    containers, notes = plans(home, {"profile": "rag"},
                              gpus=GpuReport(gpus=(gpu(cc, "GPU"),)))
    assert containers["reranking"].image == f"ghcr.io/huggingface/text-embeddings-inference:{tag}"
    assert notes == []


def test_a_gpu_without_a_tei_build_falls_back_to_cpu_and_says_so(home: Path) -> None:
    containers, notes = plans(home, {"profile": "rag"},
                              gpus=GpuReport(gpus=(gpu((7, 0), "Tesla V100"),)))
    assert containers["reranking"].image.endswith(":cpu-1.6")
    assert notes == ["the reranking service runs on the CPU: Text Embeddings Inference has no "
                     "GPU build for Tesla V100 (compute capability 7.0)"]
    assert tei_gpu_tag((7, 0)) is None


def test_rag_profile_fixes_the_stock_compose_weak_points(home: Path) -> None:
    containers, _ = plans(home, {"profile": "rag"})
    for container in containers.values():
        assert all(host == "127.0.0.1" for host, _ in container.ports.values())
    dataprep = containers["dataprep"].environment
    assert dataprep["TEI_EMBEDDING_ENDPOINT"] == "http://embedding:80"
    assert dataprep["HF_HUB_OFFLINE"] == "1"
    mega = containers["megaservice"].environment
    assert mega["LLM_MODEL"] == "smollm2-135m"
    assert (mega["LLM_SERVER_HOST_IP"], mega["LLM_SERVER_PORT"]) == ("llm", "8080")
    assert containers["embedding"].command[:2] == ["--model-id", "/models/bge-base-en-v1.5"]


def test_images_follow_registry_tag_and_per_service_overrides(home: Path) -> None:
    containers, _ = plans(home, {"profile": "rag", "images": {"llm": "my/llama:1"}},)
    assert containers["llm"].image == "my/llama:1"
    assert containers["megaservice"].image == "opea/chatqna:latest"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(
        'registry = "registry.local:5000/"\ntag = "1.3"\n[images]\nvector-db = "redis:7"\n')
    containers, _ = plans(home, {"profile": "rag"})
    assert containers["megaservice"].image == "registry.local:5000/opea/chatqna:1.3"
    assert containers["dataprep"].image == "registry.local:5000/opea/dataprep:1.3"
    assert containers["vector-db"].image == "redis:7"


def test_a_hugging_face_folder_is_served_by_tgi_with_its_folder_mounted(
        home: Path, tmp_path: Path) -> None:
    folder = LocalModel("qwen", tmp_path / "elsewhere" / "qwen", 10, format=ModelFormat.HF_FOLDER)
    containers, _ = plans(home, model=folder)
    llm = containers["llm"]
    assert llm.image.startswith("ghcr.io/huggingface/text-generation-inference:")
    assert llm.command[:2] == ["--model-id", "/models/qwen"]
    assert llm.mounts[0].source == str(tmp_path / "elsewhere")
    assert llm.environment["HF_HUB_OFFLINE"] == "1"
    assert llm.shm_size == "1g"


def test_the_local_runtime_refuses_folders_and_rag(home: Path, tmp_path: Path) -> None:
    settings = load_settings(resolve_paths(), {})
    folder = LocalModel("qwen", tmp_path / "qwen", 10, format=ModelFormat.HF_FOLDER)
    with pytest.raises(ModelError, match="the local runtime serves GGUF files"):
        plan_stack(settings, folder, lambda port: True, lambda: 1, runtime="local")
    rag = load_settings(resolve_paths(), {}, flags={"profile": "rag"})
    gguf = LocalModel("m", tmp_path / "m.gguf", 1)
    with pytest.raises(ConfigError, match="the rag profile runs OPEA's containers"):
        plan_stack(rag, gguf, lambda port: True, lambda: 1, runtime="local")


def test_gpu_requests_that_cannot_work_are_refused_before_any_pull(home: Path) -> None:
    containers, _ = plans(home)
    listed = list(containers.values())
    with pytest.raises(GpuUnavailableError, match="none is usable: no NVIDIA driver found"):
        check_gpu_request(listed, NO_GPU, nvidia_runtime=False)
    with pytest.raises(GpuUnavailableError) as caught:
        check_gpu_request(listed, ONE_GPU, nvidia_runtime=False)
    assert "NVIDIA Container Toolkit is not installed or not configured" in str(caught.value)
    assert "nvidia-ctk runtime configure" in str(caught.value)
    check_gpu_request(listed, ONE_GPU, nvidia_runtime=True)
    two, _ = plans(home, {"gpus": "2"})
    with pytest.raises(GpuUnavailableError, match="more GPUs than the 1 this machine has"):
        check_gpu_request(list(two.values()), ONE_GPU, nvidia_runtime=True)
    cpu_only, _ = plans(home, {"gpus": "none"})
    check_gpu_request(list(cpu_only.values()), NO_GPU, nvidia_runtime=False)


def test_auto_runtime_needs_docker_a_gpu_and_the_nvidia_runtime() -> None:
    ready = Machine(docker_problem=None, nvidia_runtime=True, gpus=ONE_GPU)
    assert choose_runtime("auto", ready) == (
        "docker", "Docker with the NVIDIA runtime and NVIDIA H200")
    assert choose_runtime("auto", Machine("cannot reach the Docker engine", True, ONE_GPU))[0] \
        == "local"
    no_gpu = choose_runtime("auto", Machine(None, True, NO_GPU))
    assert no_gpu == ("local", f"no usable NVIDIA GPU ({NO_GPU.problem})")
    assert choose_runtime("auto", Machine(None, False, ONE_GPU))[1].startswith(
        "Docker has no NVIDIA runtime")
    assert choose_runtime("local", None) == ("local", "--runtime local was asked for")
