"""The model formats opea-chat serves, and which server serves each on which runtime.

Data: doctor says "which runtime can serve it" from this table, the planner picks the LLM
server from it, and the memory estimate uses the server's own overhead.
"""

from __future__ import annotations

from dataclasses import dataclass

GGUF = "gguf"
HF_FOLDER = "hf"


@dataclass(frozen=True)
class ModelFormat:
    name: str
    description: str
    server: str  # key of models.memory.OVERHEAD
    runtimes: tuple[str, ...]

    def served_by(self) -> str:
        return f"{self.server} on the {' or '.join(self.runtimes)} runtime"


FORMATS: dict[str, ModelFormat] = {
    GGUF: ModelFormat(GGUF, "GGUF", "llama.cpp", ("local", "docker")),
    # vLLM serves these folders too (an [images] llm override); TGI is the default.
    HF_FOLDER: ModelFormat(HF_FOLDER, "Hugging Face safetensors folder", "TGI", ("docker",)),
}
