"""The OPEA stack as data.

Every service opea-chat can run is a ``ServiceSpec``: its role, how to tell it is healthy,
its port, what it waits for, whether it needs a GPU, the container that runs it (image,
command, environment, container port, mounts) and the command that runs it as a local
process. Runtimes and the compose export read these; none of them hard-codes a service.

Commands and values are templates: ``{model_name}``, ``{llm_url}`` and the like are filled
in by the planner for one launch (``launcher.plan``), differently for processes on
127.0.0.1 and containers on a session network.

Profiles follow OPEA's ChatQnA on NVIDIA (GenAIExamples ChatQnA/docker_compose/nvidia/gpu),
with its known weak points fixed: ports on 127.0.0.1 only, each service started as soon as
what it needs in order to start is healthy, ``LLM_MODEL`` passed, dataprep given the
variable it actually reads (``TEI_EMBEDDING_ENDPOINT``), models read from a local folder
with the hubs switched off.
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
    (OPEA's REGISTRY/TAG: ``${REGISTRY:-opea}/chatqna:${TAG}``, so the registry setting
    replaces the ``opea`` namespace); ``gpu_image`` is used instead when the service gets a
    GPU."""

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
    # The CUDA version ``gpu_image`` was built for (its NVIDIA_REQUIRE_CUDA), so doctor can
    # compare it with the driver before the image is pulled.
    gpu_cuda: str | None = None


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
    # Services that must be healthy before this one can START (it connects to them while
    # starting, or fails without them).
    waits_for: tuple[str, ...] = ()
    # Services this one calls once running but starts without: they start side by side,
    # and Ready waits for every service anyway. The compose export still orders by them.
    uses: tuple[str, ...] = ()
    needs_gpu: bool = False
    container: Container | None = None
    local_command: tuple[str, ...] | None = None

    @property
    def needs(self) -> tuple[str, ...]:
        """Every service this one needs to be of use: what it waits for and what it uses."""
        return self.waits_for + tuple(name for name in self.uses if name not in self.waits_for)


HF_OFFLINE = (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"))
# The OPEA release whose images (opea/chatqna, opea/dataprep, opea/retriever) match the
# opea-comps this project pins: never `latest`, which moves under a user's feet (ChatQnA
# 1.3/1.4 put a raw JSON chunk into answers that 1.5 no longer does).
OPEA_RELEASE = "1.5"
# OPEA's images insist on a Hugging Face token although, with the hub offline and models
# read from /models, none is ever sent: they get this placeholder, never the user's token.
HF_TOKEN_PLACEHOLDER = "offline-no-token"  # noqa: S105 (not a secret: a stand-in)
HF_TOKENS = (("HF_TOKEN", HF_TOKEN_PLACEHOLDER),
             ("HUGGINGFACEHUB_API_TOKEN", HF_TOKEN_PLACEHOLDER))
CHATQNA_PATH = "/v1/chatqna"
# Tells the app which megaservice to talk to (process or container alike).
MEGASERVICE_URL_VARIABLE = "OPEA_CHAT_MEGASERVICE_URL"

# --- LLM servers: which one serves a model depends on the runtime and the model's format.

# The llama.cpp build of the server images (ghcr.io/ggml-org/llama.cpp:server[-cuda]-bNNNN).
LLAMA_CPP_BUILD = "b11429"

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
        # Pinned to one build: the plain tags float, so two launches a day apart could run
        # two different servers. Both tags name the same build.
        image=f"ghcr.io/ggml-org/llama.cpp:server-{LLAMA_CPP_BUILD}",
        gpu_image=f"ghcr.io/ggml-org/llama.cpp:server-cuda-{LLAMA_CPP_BUILD}",
        # llama.cpp's .devops/cuda.Dockerfile: ARG CUDA_VERSION=12.8.1.
        gpu_cuda="12.8",
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
        command=(
            "--model-id", "/models/{model_file}", "--usage-stats", "off",
            # TGI ignores a context size: without these it serves min(4096, the model's
            # own maximum), not what the fit check counted the KV cache for.
            "--max-total-tokens", "{context_size}", "--max-input-tokens", "{max_input_tokens}",
            # With every GPU given (NVIDIA_VISIBLE_DEVICES=all) TGI would start one shard
            # only; the planner passes the number of GPUs the container gets.
            "--num-shard", "{num_shard}",
        ),
        environment=HF_OFFLINE,
        models_mount="/models",
        shm_size="1g",
        # TGI 2.4.1's image is built on CUDA 12.4.
        gpu_cuda="12.4",
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
    # It calls the LLM per request and never at start, so both start together.
    uses=("llm",),
    container=Container(
        # OPEA's ChatQnA image has comps installed; it runs our chat graph (mounted
        # read-only) instead of its RAG one, so the chat profile needs no image of ours.
        image="{registry}/chatqna:{tag}",
        port=8888,
        entrypoint=("python",),
        # The app container addresses it by its service name on the session's network.
        command=("-m", "opea.megaservice", "--host", "0.0.0.0", "--port", "8888",
                 "--llm-url", "{llm_url}", "--model", "{model_name}",
                 "--allowed-host", "megaservice"),
        # The image's own PYTHONPATH (`:/home/user`, where comps lives) is kept.
        environment=(("PYTHONPATH", "/home/user/opea-chat:/home/user"), ("no_proxy", "*")),
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
    # The page asks the megaservice only when a user chats.
    uses=("megaservice",),
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
        # No toolbar: "Deploy" (to Streamlit's cloud) means nothing for a local app, and the
        # page has its own Stop (app/frame.py). The theme follows the system's.
        "--client.toolbarMode", "minimal",
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
        image="{registry}/dataprep:{tag}",
        port=5000,
        # Its image sets HF_HUB_CACHE=/data, which HF_HOME does not override; 1.4+ refuses
        # to start without HF_TOKEN, 1.3 without HUGGINGFACEHUB_API_TOKEN.
        environment=(REDIS_URL, INDEX_NAME, TEI_EMBEDDING, *HF_OFFLINE, *HF_TOKENS,
                     ("DATAPREP_COMPONENT_NAME", "OPEA_DATAPREP_REDIS"),
                     ("EMBED_MODEL", "/models/{embedding_model}"),
                     ("HF_HUB_CACHE", "/models/hf-cache")),
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
        image="{registry}/retriever:{tag}",
        port=7000,
        # It loads EMBED_MODEL at import even with TEI_EMBEDDING_ENDPOINT set (default
        # BAAI/bge-base-en-v1.5 from the hub, which is offline): give it the local folder.
        environment=(REDIS_URL, INDEX_NAME, TEI_EMBEDDING, *HF_OFFLINE, *HF_TOKENS,
                     ("RETRIEVER_COMPONENT_NAME", "OPEA_RETRIEVER_REDIS"),
                     ("EMBED_MODEL", "/models/{embedding_model}"),
                     ("HF_HUB_CACHE", "/models/hf-cache")),
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
    # ChatQnA's megaservice builds its graph of remote services without calling them.
    uses=("llm", "embedding", "retriever", "reranking"),
    container=Container(
        image="{registry}/chatqna:{tag}",
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

# The same app; it also uses dataprep (Ready waits for it: documents can be added then).
RAG_APP = replace(CHAT_APP, uses=("megaservice", "dataprep"))
# The remote runtime's only service: the app, for a megaservice that runs elsewhere (its
# endpoint is checked before the app starts).
REMOTE_APP = replace(CHAT_APP, uses=())

# --- The rag profile on the local runtime: the same graph as processes (rag/README.md).
# No vector DB to run (the index is a folder that dataprep writes and the retriever reads)
# and no reranker (no reranker model ships offline): ChatQnA's without-rerank graph.

LOCAL_EMBEDDING = replace(
    EMBEDDING,
    description="embedding server (ONNX sentence embeddings; TEI's /embed)",
    local_command=("{python}", "-m", "rag.embedding_server", "--host", "{host}",
                   "--port", "{port}", "--model-dir", "{embedding_model_dir}"),
)
LOCAL_DATAPREP = replace(
    DATAPREP,
    description="dataprep (parse, split, embed, store in the local index)",
    default_timeout=120.0,
    waits_for=("embedding",),
    local_command=("{python}", "-m", "rag.dataprep_server", "--host", "{host}",
                   "--port", "{port}", "--data-dir", "{rag_dir}",
                   "--embedding-url", "{embedding_url}"),
)
LOCAL_RETRIEVER = replace(
    RETRIEVER,
    description="retriever (similarity search in the local index)",
    default_timeout=120.0,
    waits_for=("embedding",),
    local_command=("{python}", "-m", "rag.retriever_server", "--host", "{host}",
                   "--port", "{port}", "--data-dir", "{rag_dir}",
                   "--embedding-url", "{embedding_url}"),
)
LOCAL_RAG_MEGASERVICE = replace(
    CHAT_MEGASERVICE,
    description="OPEA megaservice (ChatQnA's graph without rerank: embedding, retriever, LLM)",
    # It calls its nodes only when asked: it starts beside them.
    uses=("llm", "embedding", "retriever"),
    container=None,
    local_command=(*(CHAT_MEGASERVICE.local_command or ()),
                   "--embedding-url", "{embedding_url}", "--retriever-url", "{retriever_url}"),
)
NO_RERANKER = ("reranking off: no reranker model ships offline, so the graph is ChatQnA's "
               "without-rerank flow (embedding -> retriever -> llm)")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    # The LLM slot is filled per launch (llama.cpp or TGI, by runtime and model format).
    services: tuple[ServiceSpec, ...] = field(default_factory=tuple)
    # The services when they run as local processes; None: the profile needs containers.
    local_services: tuple[ServiceSpec, ...] | None = None
    # What `launch` and `status` say about the profile on each runtime.
    notes: tuple[str, ...] = ()
    local_notes: tuple[str, ...] = ()

    def services_on(self, runtime: str) -> tuple[ServiceSpec, ...] | None:
        return self.local_services if runtime == "local" else self.services

    def notes_on(self, runtime: str) -> tuple[str, ...]:
        return self.local_notes if runtime == "local" else self.notes
    # Services the LLM starts after. TGI takes ~90% of the free VRAM at warm-up: a reranker
    # starting on the same GPU at the same moment races it for memory on small GPUs, so the
    # reranker starts first and TGI sizes its cache around it.
    llm_after: tuple[str, ...] = ()


PROFILES: dict[str, Profile] = {
    "chat": Profile("chat", "a local LLM behind OPEA's megaservice",
                    (CHAT_MEGASERVICE, CHAT_APP), local_services=(CHAT_MEGASERVICE, CHAT_APP)),
    "rag": Profile(
        "rag",
        "ChatQnA with retrieval: vector DB, dataprep, embedding, retriever, reranker",
        (VECTOR_DB, EMBEDDING, RERANKER, DATAPREP, RETRIEVER, RAG_MEGASERVICE, RAG_APP),
        local_services=(LOCAL_EMBEDDING, LOCAL_DATAPREP, LOCAL_RETRIEVER,
                        LOCAL_RAG_MEGASERVICE, RAG_APP),
        notes=("reranking on: TEI reranker (ChatQnA's full graph)",),
        local_notes=(NO_RERANKER,),
        llm_after=("reranking",),
    ),
}

# TEI's GPU images are built per compute capability (TEI 1.9's README, "Docker Images";
# V100 has none). 1.6 and later carry curl, which the compose healthcheck runs.
TEI_RELEASE = "1.9"
TEI_GPU_TAGS: dict[tuple[int, int], str] = {
    (7, 5): f"turing-{TEI_RELEASE}",
    (8, 0): TEI_RELEASE,
    (8, 6): f"86-{TEI_RELEASE}",
    (8, 7): f"86-{TEI_RELEASE}",
    (8, 9): f"89-{TEI_RELEASE}",
    (9, 0): f"hopper-{TEI_RELEASE}",
    (10, 0): f"100-{TEI_RELEASE}",
    (12, 0): f"120-{TEI_RELEASE}",
}
# TEI's all-architecture image (Ampere and newer), for GPUs newer than the table.
TEI_ANY_GPU_TAG = f"cuda-{TEI_RELEASE}"


def tei_gpu_tag(compute_capability: tuple[int, int]) -> str | None:
    """The TEI GPU image tag for a compute capability, or None where TEI has no build."""
    if compute_capability in TEI_GPU_TAGS:
        return TEI_GPU_TAGS[compute_capability]
    return TEI_ANY_GPU_TAG if compute_capability >= (8, 0) else None
