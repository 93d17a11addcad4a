"""The containers the docker runtime would create, planned without an engine or a GPU:
device requests, image choice per GPU, loopback ports, read-only mounts, labels."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from pytest_mock import MockerFixture

from launcher.checks import RERANKER_VRAM, Status, cuda_check, gpus_for_llm
from launcher.compose import compose_file
from launcher.docker_plan import (
    ALL_GPUS,
    LABEL_HOME,
    LABEL_MANAGED,
    LABEL_SERVICE,
    LABEL_SESSION,
    ContainerPlan,
    check_gpu_request,
    check_model_folders,
    container_plans,
    missing_model_folders,
)
from launcher.errors import GpuUnavailableError
from launcher.gpu import Gpu, GpuReport
from launcher.paths import resolve_paths
from launcher.plan import plan_stack
from launcher.preflight import Ram, llm_memory_target
from launcher.runtime_choice import Machine, choose_runtime
from launcher.settings import load_settings
from models.errors import ModelError
from models.formats import ModelFormat
from models.store import LocalModel
from opea.stack import (
    HF_TOKEN_PLACEHOLDER,
    LLAMA_CPP_BUILD,
    OPEA_RELEASE,
    PROFILES,
    TEI_ANY_GPU_TAG,
    TEI_GPU_TAGS,
    tei_gpu_tag,
)
from tests.nvml import H200, fake_nvml

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
    assert llm.image == f"ghcr.io/ggml-org/llama.cpp:server-cuda-{LLAMA_CPP_BUILD}"
    assert llm.gpu_count == ALL_GPUS and mega.gpu_count is None
    assert llm.ports == {"8080/tcp": ("127.0.0.1", 9009)}
    assert mega.ports == {"8888/tcp": ("127.0.0.1", 8888)}
    assert "--n-gpu-layers" in llm.command and llm.command[llm.command.index("--n-gpu-layers")
                                                        + 1] == "999"
    assert llm.command[:2] == ["--model", "/models/smol.gguf"]
    assert [(m.source, m.target, m.read_only) for m in llm.mounts] == [
        (str(home / "models"), "/models", True)]
    assert mega.entrypoint == ["python"]
    # The app container reaches it by its service name, so that name passes the Host guard.
    assert mega.command[-6:] == ["--llm-url", "http://llm:8080", "--model", "smollm2-135m",
                                 "--allowed-host", "megaservice"]
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
    assert containers["llm"].image == f"ghcr.io/ggml-org/llama.cpp:server-{LLAMA_CPP_BUILD}"
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
    # A CPU image with a GPU request would fail wherever no GPU can be given.
    assert containers["reranking"].gpu_count is None


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
    assert containers["megaservice"].image == f"opea/chatqna:{OPEA_RELEASE}"
    (home / "config").mkdir(parents=True)
    (home / "config" / "config.toml").write_text(
        'registry = "registry.local:5000/opea"\ntag = "1.3"\n[images]\nvector-db = "redis:7"\n')
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


def test_the_local_runtime_refuses_folders(home: Path, tmp_path: Path) -> None:
    settings = load_settings(resolve_paths(), {})
    folder = LocalModel("qwen", tmp_path / "qwen", 10, format=ModelFormat.HF_FOLDER)
    with pytest.raises(ModelError, match="the local runtime serves GGUF files"):
        plan_stack(settings, folder, lambda port: True, lambda: 1, runtime="local")


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


# -- upstream facts (issue 15 and issue 11 item 5): each test names the file it encodes ---

TWO_GPUS = GpuReport(gpus=(gpu(), gpu()), driver_version="565.57", cuda_version="12.7")


def folder_model(tmp_path: Path) -> LocalModel:
    return LocalModel("qwen", tmp_path / "qwen", 10, format=ModelFormat.HF_FOLDER)


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_tgi_is_told_the_context_size_it_is_checked_for(home: Path, tmp_path: Path) -> None:
    """TGI 2.4.1 ignores any context setting but its own: launcher/src/main.rs
    (huggingface/text-generation-inference, v2.4.1) defaults max_total_tokens to
    min(4096, max_position_embeddings) and requires max_input_tokens < max_total_tokens."""
    containers, _ = plans(home, {"context_size": 8192}, model=folder_model(tmp_path))
    command = containers["llm"].command
    assert option(command, "--max-total-tokens") == "8192"
    assert option(command, "--max-input-tokens") == "8191"


@pytest.mark.parametrize("flag,report,shards", [("all", TWO_GPUS, "2"), ("1", TWO_GPUS, "1"),
                                                ("all", ONE_GPU, "1")])
def test_tgi_gets_one_shard_per_gpu_it_is_given(home: Path, tmp_path: Path, flag: str,
                                                report: GpuReport, shards: str) -> None:
    """TGI 2.4.1 launcher/src/main.rs (num_shard): with NVIDIA_VISIBLE_DEVICES=all, which a
    device request for every GPU sets (moby daemon/nvidia_linux.go), it counts one shard;
    --num-shard must say how many GPUs it has, as the fit check assumes (one per GPU)."""
    containers, _ = plans(home, {"gpus": flag}, model=folder_model(tmp_path), gpus=report)
    assert option(containers["llm"].command, "--num-shard") == shards
    given = gpus_for_llm("docker", True, flag, report)
    assert given is not None and len(given) == int(shards)


def test_in_the_rag_profile_the_reranker_starts_before_the_llm(home: Path,
                                                                tmp_path: Path) -> None:
    """TGI 2.4.1 server/text_generation_server/models/flash_causal_lm.py (warmup) takes
    ~90% of the free VRAM (cuda_memory_fraction), and GenAIExamples ChatQnA/docker_compose/
    nvidia/gpu/compose.yaml (1.5) starts the TEI reranker beside it: the reranker starts
    first here, and the LLM's fit check counts the reranker's VRAM."""
    settings = load_settings(resolve_paths(), {}, flags={"profile": "rag"})
    plan = plan_stack(settings, folder_model(tmp_path), lambda port: True, lambda: 40000,
                      runtime="docker")
    order = [service.name for service in plan.services]
    assert order.index("reranking") < order.index("llm")
    assert "reranking" in plan.service("llm").spec.waits_for
    chat = plan_stack(load_settings(resolve_paths(), {}), folder_model(tmp_path),
                      lambda port: True, lambda: 40000, runtime="docker")
    assert chat.service("llm").spec.waits_for == ()

    ram = Ram(total=64 * GIB, available=60 * GIB)
    alone = llm_memory_target(ModelFormat.HF_FOLDER, load_settings(resolve_paths(), {}), "docker",
                              ONE_GPU, ram)
    beside = llm_memory_target(ModelFormat.HF_FOLDER, settings, "docker", ONE_GPU, ram)
    assert alone.available - beside.available == RERANKER_VRAM
    # Where the reranker runs on the CPU (no TEI build for the GPU) it takes no VRAM.
    v100 = GpuReport(gpus=(gpu((7, 0), "Tesla V100"),), driver_version="565", cuda_version="12.7")
    assert llm_memory_target(ModelFormat.HF_FOLDER, settings, "docker", v100, ram).available == \
        llm_memory_target(ModelFormat.HF_FOLDER, load_settings(resolve_paths(), {}), "docker", v100,
                          ram).available


def test_tei_tags_cover_blackwell_and_newer_gpus_get_the_all_architecture_image() -> None:
    """huggingface/text-embeddings-inference README.md, "Docker Images" (v1.9): 100-1.9
    (Blackwell 10.0), 120-1.9 (Blackwell 12.0), cuda-1.9 for any Ampere or newer GPU;
    Volta not supported."""
    assert tei_gpu_tag((10, 0)) == "100-1.9" and tei_gpu_tag((12, 0)) == "120-1.9"
    assert tei_gpu_tag((9, 0)) == "hopper-1.9" and tei_gpu_tag((7, 5)) == "turing-1.9"
    assert tei_gpu_tag((12, 1)) == TEI_ANY_GPU_TAG == "cuda-1.9"
    assert tei_gpu_tag((7, 0)) is None and tei_gpu_tag((6, 1)) is None


def test_every_tei_image_has_what_its_healthcheck_runs() -> None:
    """TEI's Dockerfile-cuda before v1.6 ends on a bare CUDA base without curl; from v1.6 the
    final stage installs it (huggingface/text-embeddings-inference, Dockerfile-cuda, v1.6.0).
    The compose healthcheck of a TEI service runs curl, so no TEI tag may be older."""
    tei = [spec for profile in PROFILES.values() for spec in profile.services
           if spec.container and "text-embeddings-inference" in spec.container.image]
    assert tei
    tags = [spec.container.image.rpartition(":")[2] for spec in tei if spec.container] + \
        list(TEI_GPU_TAGS.values()) + [TEI_ANY_GPU_TAG]
    for spec in tei:
        assert spec.container is not None and spec.container.health_tool == "curl"
    for tag in tags:
        major, minor = tag.rpartition("-")[2].split(".")[:2] if "-" in tag else \
            tag.split(".")[:2]
        assert (int(major), int(minor)) >= (1, 6), tag


def test_llama_cpp_images_are_pinned_and_say_which_cuda_they_need(home: Path) -> None:
    """ghcr.io/ggml-org/llama.cpp publishes server[-cuda]-bNNNN per build; the plain tags
    float. Its .devops/cuda.Dockerfile builds on CUDA 12.8.1 (ARG CUDA_VERSION)."""
    containers, _ = plans(home)
    llm = containers["llm"]
    assert llm.image.endswith(f":server-cuda-{LLAMA_CPP_BUILD}")
    assert llm.cuda_requirement == "cuda>=12.8"
    cpu, _ = plans(home, {"gpus": "none"})
    assert cpu["llm"].image.endswith(f":server-{LLAMA_CPP_BUILD}")
    assert cpu["llm"].cuda_requirement is None
    # An image of the user's own: its CUDA is unknown until it is here.
    own, _ = plans(home, {"images": {"llm": "my/llama:cuda"}})
    assert own["llm"].cuda_requirement is None
    # doctor's verdict before the image is pulled: the driver must support CUDA 12.8.
    r550 = GpuReport(gpus=(gpu(),), driver_version="550.54.15", cuda_version="12.4")
    verdict = cuda_check("llm", llm.image, llm.cuda_requirement, r550)
    assert verdict is not None and verdict.status is Status.FAIL
    assert verdict.detail.startswith(f"{llm.image} needs cuda>=12.8 but NVIDIA driver "
                                     "550.54.15 (CUDA up to 12.4) meets none of")
    r570 = GpuReport(gpus=(gpu(),), driver_version="570.86.15", cuda_version="12.8")
    passing = cuda_check("llm", llm.image, llm.cuda_requirement, r570)
    assert passing is not None and passing.status is Status.PASS


def test_opea_images_match_the_pinned_opea_comps_release(home: Path) -> None:
    """GenAIExamples ChatQnA/chatqna.py 1.3/1.4 put a raw JSON chunk into the answer when
    llama.cpp's first streamed delta has content null (fixed in 1.5): the opea/* images must
    be the release of the opea-comps this project pins, never latest."""
    pinned = importlib.metadata.version("opea-comps")
    assert pinned.split(".")[:2] == OPEA_RELEASE.split(".")[:2]
    containers, _ = plans(home, {"profile": "rag"})
    for service in ("megaservice", "dataprep", "retriever"):
        assert containers[service].image.endswith(f":{OPEA_RELEASE}")


def test_the_registry_setting_replaces_the_opea_namespace_as_opeas_does(home: Path) -> None:
    """GenAIExamples ChatQnA/docker_compose/nvidia/gpu/compose.yaml (1.5):
    image: ${REGISTRY:-opea}/chatqna:${TAG:-latest}."""
    containers, _ = plans(home, {"profile": "rag", "registry": "mirror.local:5000/ai"})
    assert containers["megaservice"].image == f"mirror.local:5000/ai/chatqna:{OPEA_RELEASE}"
    assert containers["retriever"].image == f"mirror.local:5000/ai/retriever:{OPEA_RELEASE}"


def test_opea_rag_images_get_what_they_need_offline(home: Path) -> None:
    """GenAIComps 1.5: comps/retrievers/src/integrations/redis.py builds
    HuggingFaceEmbeddings(EMBED_MODEL) at import (default BAAI/bge-base-en-v1.5) even with
    TEI_EMBEDDING_ENDPOINT set; comps/dataprep/src/integrations/redis.py raises without
    HF_TOKEN (1.3: HUGGINGFACEHUB_API_TOKEN); comps/dataprep/src/Dockerfile sets
    HF_HUB_CACHE=/data, which HF_HOME does not override."""
    containers, _ = plans(home, {"profile": "rag"})
    for service in ("retriever", "dataprep"):
        env = containers[service].environment
        assert env["EMBED_MODEL"] == "/models/bge-base-en-v1.5"
        assert env["HF_HUB_CACHE"] == "/models/hf-cache" and "HF_HOME" not in env
        assert env["HF_TOKEN"] == env["HUGGINGFACEHUB_API_TOKEN"] == HF_TOKEN_PLACEHOLDER
        assert env["HF_HUB_OFFLINE"] == "1"
        assert any(m.target == "/models" for m in containers[service].mounts)


def test_the_megaservice_keeps_the_images_pythonpath(home: Path) -> None:
    """GenAIComps comps/cores/... comps-base Dockerfile (1.5): ENV PYTHONPATH=$PYTHONPATH:
    $HOME, i.e. ":/home/user", where comps lives; ours must keep it."""
    for profile in ("chat", "rag"):
        containers, _ = plans(home, {"profile": profile})
        path = containers["megaservice"].environment.get("PYTHONPATH", ":/home/user")
        assert "/home/user" in path.split(":")


def test_missing_embedding_and_reranker_folders_stop_before_any_pull(home: Path) -> None:
    """The rag containers read their models from /models (the TEI --model-id folder,
    EMBED_MODEL) with the hub offline: a missing folder would only fail after every image is
    pulled, so it is refused first with the pull command."""
    paths = resolve_paths()
    settings = load_settings(paths, {}, flags={"profile": "rag"})
    model = LocalModel("smollm2-135m", paths.models_dir / "smol.gguf", 1)
    plan = plan_stack(settings, model, lambda port: True, lambda: 40000, runtime="docker")
    with pytest.raises(ModelError) as caught:
        check_model_folders(plan, paths.models_dir)
    assert caught.value.message == (f"the rag profile needs bge-base-en-v1.5, bge-reranker-base "
                                    f"in {paths.models_dir}, which is not there")
    assert caught.value.hint == ("pull it first: `opea-chat models pull hf:BAAI/bge-base-en-v1.5`"
                                 "; `opea-chat models pull hf:BAAI/bge-reranker-base`")
    (paths.models_dir / "bge-base-en-v1.5").mkdir(parents=True)
    (paths.models_dir / "bge-reranker-base").mkdir()
    check_model_folders(plan, paths.models_dir)
    chat = plan_stack(load_settings(paths, {}), model, lambda port: True, lambda: 1,
                      runtime="docker")
    assert missing_model_folders(chat, paths.models_dir / "none") == []


def test_export_compose_makes_the_tei_tag_a_variable(home: Path, mocker: MockerFixture,
                                                     tmp_path: Path) -> None:
    """TEI's GPU images are built for one compute capability (text-embeddings-inference
    README.md, "Docker Images", v1.9); a file exported on an H200 and run on an RTX 5090 fails
    with "Runtime compute cap 120 is not compatible with compile time compute cap 90". The
    exported tag is ${TEI_GPU_TAG:-<this GPU's tag>}, which docker compose interpolates."""
    fake_nvml(mocker, [H200])
    paths = resolve_paths()
    settings = load_settings(paths, {}, flags={"profile": "rag"})
    text = compose_file(settings, paths)
    document = yaml.safe_load(text)
    image = document["services"]["reranking"]["image"]
    assert image == "ghcr.io/huggingface/text-embeddings-inference:${TEI_GPU_TAG:-hopper-1.9}"
    assert "# Note: the reranker's TEI image tag fits this machine's GPU; on another GPU set " \
        "TEI_GPU_TAG" in text
    assert document["services"]["embedding"]["image"].endswith(":cpu-1.6")
    exported = tmp_path / "compose.yaml"
    exported.write_text(text)
    resolved = subprocess.run(["docker-compose", "-f", str(exported), "config"],
                              capture_output=True, text=True, check=True, timeout=60,
                              env={**os.environ, "TEI_GPU_TAG": "120-1.9"}).stdout
    assert "image: ghcr.io/huggingface/text-embeddings-inference:120-1.9" in resolved

    # Without a GPU at export the reranker runs on the CPU image, with no GPU request.
    fake_nvml(mocker, [])
    cpu = yaml.safe_load(compose_file(settings, paths))["services"]["reranking"]
    assert cpu["image"].endswith(":cpu-1.6") and "deploy" not in cpu
