"""The OPEA stack as data.

Every service opea-chat can run is a ``ServiceSpec``: its role, how to tell it is healthy,
its port, what it waits for, whether it needs a GPU, the container that runs it (image,
command, environment, container port, mounts) and the command that runs it as a local
process. Runtimes and the compose export read these; none of them hard-codes a service.

Commands and values are templates: ``{model_name}``, ``{llm_url}`` and the like are filled
in by the planner for one launch (``launcher.plan``), differently for processes on
127.0.0.1 and containers on a session network.

Profiles follow OPEA's ChatQnA on NVIDIA (GenAIExamples ChatQnA/docker_compose/nvidia/gpu),
with its known weak points fixed: ports on 127.0.0.1 only, each service started only once
what it needs is healthy, ``LLM_MODEL`` passed, dataprep given the variable it actually reads
(``TEI_EMBEDDING_ENDPOINT``), models read from a local folder with the hubs switched off.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum


class Role(StrEnum):
    LLM = "llm"
    MEGASERVICE = "megaservice"
    UI = "ui"
    VECTOR_DB = "vector-db"
    DATAPREP = "dataprep"
    EMBEDDING = "embedding"
    RETRIEVER = "retriever"
    RERANKER = "reranker"


class HealthKind(StrEnum):
    HTTP = "http"  # GET path answers 2xx
    REDIS = "redis"  # PING answers +PONG


@dataclass(frozen=True)
class Health:
    kind: HealthKind = HealthKind.HTTP
    path: str = "/"


@dataclass(frozen=True)
class Container:
    """How a service runs as a container. ``image`` may hold ``{registry}`` and ``{tag}``
    (OPEA's REGISTRY/TAG); ``gpu_image`` is used instead when the service gets a GPU."""

    image: str
    port: int
    command: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    environment: tuple[tuple[str, str], ...] = ()
    gpu_image: str | None = None
    # Where the models folder is mounted read-only, if the service reads models.
    models_mount: str | None = None
    # Mount this project's `opea` package (read-only) so the image runs our megaservice.
    mounts_project: bool = False
    shm_size: str | None = None
    # What the image has for an in-container health check (compose healthchecks): OPEA's
    # Python images have no curl.
    health_tool: str = "curl"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    role: Role
    description: str
    health: Health
    default_port: int
    # The settings that may override the host port and start timeout, where there are any.
    port_setting: str | None = None
    timeout_setting: str | None = None
    default_timeout: float = 120.0
    waits_for: tuple[str, ...] = ()
    needs_gpu: bool = False
    container: Container | None = None
    local_command: tuple[str, ...] | None = None


HF_OFFLINE = (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"))
CHATQNA_PATH = "/v1/chatqna"
# Tells the app which megaservice to talk to (process or container alike).
MEGASERVICE_URL_VARIABLE = "OPEA_CHAT_MEGASERVICE_URL"

# --- LLM servers: which one serves a model depends on the runtime and the model's format.

LLAMA_CPP_PYTHON = ServiceSpec(
    name="llm",
    role=Role.LLM,
    description="LLM server (llama-cpp-python, OpenAI-compatible)",
    # llama-cpp-python's server has no /health; /v1/models answers once the model is loaded.
    health=Health(path="/v1/models"),
    default_port=9009,
    port_setting="llm_port",
    timeout_setting="llm_start_timeout",
    local_command=(
        "{python}", "-m", "opea.llm_server", "--model", "{model_path}",
        "--model_alias", "{model_name}", "--host", "{host}", "--port", "{port}",
        "--n_ctx", "{context_size}", "--n_threads", "{threads}",
        "--n_gpu_layers", "{gpu_layers}",
        # By default a new request cuts off the one being answered: two tabs, or the
        # terminal chat beside the app, would cut each other's answers. Queue them instead
        # (Stop closes the stream, which ends generation anyway).
        "--interrupt_requests", "False",
    ),
)

LLAMA_CPP_SERVER = ServiceSpec(
    name="llm",
    role=Role.LLM,
    description="LLM server (llama.cpp server, GGUF)",
    # 503 while the model loads, 200 once it can answer.
    health=Health(path="/health"),
    default_port=9009,
    port_setting="llm_port",
    timeout_setting="llm_start_timeout",
    needs_gpu=True,
    container=Container(
        image="ghcr.io/ggml-org/llama.cpp:server",
        gpu_image="ghcr.io/ggml-org/llama.cpp:server-cuda",
        port=8080,
        command=(
            "--model", "/models/{model_file}", "--alias", "{model_name}",
            "--host", "0.0.0.0", "--port", "8080", "--ctx-size", "{context_size}",
            "--n-gpu-layers", "{gpu_layers}",
        ),
        models_mount="/models",
    ),
)

TGI = ServiceSpec(
    name="llm",
    role=Role.LLM,
    description="LLM server (Text Generation Inference, Hugging Face folder)",
    health=Health(path="/health"),
    default_port=9009,
    port_setting="llm_port",
    timeout_setting="llm_start_timeout",
    needs_gpu=True,
    container=Container(
        image="ghcr.io/huggingface/text-generation-inference:2.4.1",
        port=80,
        command=("--model-id", "/models/{model_file}", "--usage-stats", "off"),
        environment=HF_OFFLINE,
        models_mount="/models",
        shm_size="1g",
    ),
)

# --- The chat profile: LLM + OPEA megaservice + the app.

CHAT_MEGASERVICE = ServiceSpec(
    name="megaservice",
    role=Role.MEGASERVICE,
    description="OPEA megaservice (chat graph on comps' ServiceOrchestrator)",
    health=Health(path="/v1/health_check"),
    default_port=8888,
    port_setting="megaservice_port",
    timeout_setting="megaservice_start_timeout",
    # OPEA's megaservice never checks its LLM, so start it only once the LLM answers.
    waits_for=("llm",),
    container=Container(
        # OPEA's ChatQnA image has comps installed; it runs our chat graph (mounted
        # read-only) instead of its RAG one, so the chat profile needs no image of ours.
        image="{registry}opea/chatqna:{tag}",
        port=8888,
        entrypoint=("python",),
        # The app container addresses it by its service name on the session's network.
        command=("-m", "opea.megaservice", "--host", "0.0.0.0", "--port", "8888",
                 "--llm-url", "{llm_url}", "--model", "{model_name}",
                 "--allowed-host", "megaservice"),
        environment=(("PYTHONPATH", "/home/user/opea-chat"), ("no_proxy", "*")),
        mounts_project=True,
        health_tool="python",
    ),
    local_command=(
        "{python}", "-m", "opea.megaservice", "--host", "{host}", "--port", "{port}",
        "--llm-url", "{llm_url}", "--model", "{model_name}",
    ),
)

# The page script the app's local command runs (`{app_script}`): named as a module, so that
# a runtime finds its file without importing the app.
APP_MODULE = "app.server"

CHAT_APP = ServiceSpec(
    name="app",
    role=Role.UI,
    description="opea-chat web app (Streamlit)",
    health=Health(path="/_stcore/health"),
    default_port=8501,
    port_setting="app_port",
    timeout_setting="app_start_timeout",
    waits_for=("megaservice",),
    container=Container(
        image="opea-chat/app:{version}",
        port=8501,
        environment=((MEGASERVICE_URL_VARIABLE, "{megaservice_url}"),),
        health_tool="python",
    ),
    local_command=(
        "{python}", "-m", "streamlit", "run", "{app_script}",
        "--server.address", "{host}", "--server.port", "{port}",
        "--server.headless", "true", "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
        # "Deploy" (to Streamlit's cloud) means nothing for a local app.
        "--client.toolbarMode", "viewer",
    ),
)

# --- The rag profile: ChatQnA's retrieval services in front of the LLM.

REDIS_URL = ("REDIS_URL", "redis://vector-db:6379")
INDEX_NAME = ("INDEX_NAME", "rag-redis")
TEI_EMBEDDING = ("TEI_EMBEDDING_ENDPOINT", "http://embedding:80")

VECTOR_DB = ServiceSpec(
    name="vector-db",
    role=Role.VECTOR_DB,
    description="vector database (Redis Stack)",
    health=Health(kind=HealthKind.REDIS),
    default_port=6379,
    container=Container(image="redis/redis-stack:7.2.0-v9", port=6379),
)

EMBEDDING = ServiceSpec(
    name="embedding",
    role=Role.EMBEDDING,
    description="embedding server (Text Embeddings Inference, CPU)",
    health=Health(path="/health"),
    default_port=6006,
    container=Container(
        image="ghcr.io/huggingface/text-embeddings-inference:cpu-1.6",
        port=80,
        command=("--model-id", "/models/{embedding_model}", "--auto-truncate"),
        environment=HF_OFFLINE,
        models_mount="/models",
    ),
)

RERANKER = ServiceSpec(
    name="reranking",
    role=Role.RERANKER,
    description="reranker (Text Embeddings Inference)",
    health=Health(path="/health"),
    default_port=8808,
    needs_gpu=True,
    container=Container(
        image="ghcr.io/huggingface/text-embeddings-inference:cpu-1.6",
        # The GPU image's tag depends on the GPU's compute capability: see tei_gpu_tag.
        gpu_image="ghcr.io/huggingface/text-embeddings-inference:{tei_gpu_tag}",
        port=80,
        command=("--model-id", "/models/{reranker_model}", "--auto-truncate"),
        environment=HF_OFFLINE,
        models_mount="/models",
    ),
)

DATAPREP = ServiceSpec(
    name="dataprep",
    role=Role.DATAPREP,
    description="OPEA dataprep (parse, split, embed, store)",
    health=Health(path="/v1/health_check"),
    default_port=6007,
    default_timeout=300.0,
    waits_for=("vector-db", "embedding"),
    container=Container(
        image="{registry}opea/dataprep:{tag}",
        port=5000,
        environment=(REDIS_URL, INDEX_NAME, TEI_EMBEDDING, *HF_OFFLINE,
                     ("DATAPREP_COMPONENT_NAME", "OPEA_DATAPREP_REDIS"),
                     ("HF_HOME", "/models/hf-cache")),
        models_mount="/models",
        health_tool="python",
    ),
)

RETRIEVER = ServiceSpec(
    name="retriever",
    role=Role.RETRIEVER,
    description="OPEA retriever",
    health=Health(path="/v1/health_check"),
    default_port=7000,
    default_timeout=300.0,
    waits_for=("vector-db", "embedding"),
    container=Container(
        image="{registry}opea/retriever:{tag}",
        port=7000,
        environment=(REDIS_URL, INDEX_NAME, TEI_EMBEDDING, *HF_OFFLINE,
                     ("RETRIEVER_COMPONENT_NAME", "OPEA_RETRIEVER_REDIS"),
                     ("HF_HOME", "/models/hf-cache")),
        models_mount="/models",
        health_tool="python",
    ),
)

RAG_MEGASERVICE = ServiceSpec(
    name="megaservice",
    role=Role.MEGASERVICE,
    description="OPEA ChatQnA megaservice (embedding, retrieval, rerank, LLM)",
    health=Health(path="/v1/health_check"),
    default_port=8888,
    port_setting="megaservice_port",
    timeout_setting="megaservice_start_timeout",
    waits_for=("llm", "embedding", "retriever", "reranking"),
    container=Container(
        image="{registry}opea/chatqna:{tag}",
        port=8888,
        environment=(
            ("MEGA_SERVICE_PORT", "8888"),
            ("EMBEDDING_SERVER_HOST_IP", "embedding"), ("EMBEDDING_SERVER_PORT", "80"),
            ("RETRIEVER_SERVICE_HOST_IP", "retriever"), ("RETRIEVER_SERVICE_PORT", "7000"),
            ("RERANK_SERVER_HOST_IP", "reranking"), ("RERANK_SERVER_PORT", "80"),
            ("LLM_SERVER_HOST_IP", "llm"), ("LLM_SERVER_PORT", "{llm_container_port}"),
            ("LLM_MODEL", "{model_name}"), ("no_proxy", "*"),
        ),
        health_tool="python",
    ),
)

# The same app; it also waits for dataprep, so that at Ready documents can be added too.
RAG_APP = replace(CHAT_APP, waits_for=("megaservice", "dataprep"))


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    # The LLM slot is filled per launch (llama.cpp or TGI, by runtime and model format).
    services: tuple[ServiceSpec, ...] = field(default_factory=tuple)


PROFILES: dict[str, Profile] = {
    "chat": Profile("chat", "a local LLM behind OPEA's megaservice", (CHAT_MEGASERVICE, CHAT_APP)),
    "rag": Profile(
        "rag",
        "ChatQnA with retrieval: vector DB, dataprep, embedding, retriever, reranker",
        (VECTOR_DB, EMBEDDING, RERANKER, DATAPREP, RETRIEVER, RAG_MEGASERVICE, RAG_APP),
    ),
}

# TEI's GPU images are built per compute capability (GenAIExamples' notes; V100 has none).
TEI_GPU_TAGS: dict[tuple[int, int], str] = {
    (7, 5): "turing-1.5",
    (8, 0): "1.5",
    (8, 6): "86-1.5",
    (8, 7): "86-1.5",
    (8, 9): "89-1.5",
    (9, 0): "hopper-1.5",
}


def tei_gpu_tag(compute_capability: tuple[int, int]) -> str | None:
    """The TEI GPU image tag for a compute capability, or None where TEI has no build."""
    return TEI_GPU_TAGS.get(compute_capability)
