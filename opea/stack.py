"""The OPEA stack as data.

Each service says what it is, how to tell it is healthy, which setting holds its port and
start timeout, and what it waits for. Runtimes read this; they do not hard-code services.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    LLM = "llm"
    MEGASERVICE = "megaservice"
    UI = "ui"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    role: Role
    description: str
    health_path: str
    port_setting: str
    timeout_setting: str
    waits_for: tuple[str, ...] = ()
    needs_gpu: bool = False


LLM_SERVER = ServiceSpec(
    name="llm",
    role=Role.LLM,
    description="LLM server (llama.cpp, OpenAI-compatible)",
    # llama-cpp-python's server has no /health; /v1/models answers once the model is loaded.
    health_path="/v1/models",
    port_setting="llm_port",
    timeout_setting="llm_start_timeout",
)

MEGASERVICE = ServiceSpec(
    name="megaservice",
    role=Role.MEGASERVICE,
    description="OPEA ChatQnA megaservice",
    health_path="/v1/health_check",
    port_setting="megaservice_port",
    timeout_setting="megaservice_start_timeout",
    # OPEA's megaservice never checks its LLM, so start it only once the LLM answers.
    waits_for=("llm",),
)

CHAT_APP = ServiceSpec(
    name="app",
    role=Role.UI,
    description="opea-chat web app (Streamlit)",
    health_path="/_stcore/health",
    port_setting="app_port",
    timeout_setting="app_start_timeout",
    waits_for=("megaservice",),
)

PROFILES: dict[str, tuple[ServiceSpec, ...]] = {
    "chat": (LLM_SERVER, MEGASERVICE, CHAT_APP),
}

CHATQNA_PATH = "/v1/chatqna"
