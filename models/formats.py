"""The model formats opea-chat serves, and which server serves each on which runtime.

Data: doctor says "which runtime can serve it" from this table, the planner picks the LLM
server from it, and the memory estimate uses the server's own overhead.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ModelFormat(StrEnum):
    GGUF = "gguf"  # one file for llama.cpp
    HF_FOLDER = "hf"  # a Hugging Face safetensors folder for TGI or vLLM


@dataclass(frozen=True)
class FormatSpec:
    format: ModelFormat
    description: str
    server: str  # key of models.memory.OVERHEAD
    runtimes: tuple[str, ...]

    def served_by(self) -> str:
        return f"{self.server} on the {' or '.join(self.runtimes)} runtime"


FORMATS: dict[ModelFormat, FormatSpec] = {
    ModelFormat.GGUF: FormatSpec(ModelFormat.GGUF, "GGUF", "llama.cpp", ("local", "docker")),
    # vLLM serves these folders too (an [images] llm override); TGI is the default.
    ModelFormat.HF_FOLDER: FormatSpec(ModelFormat.HF_FOLDER, "Hugging Face safetensors folder",
                                      "TGI", ("docker",)),
}
