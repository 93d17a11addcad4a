"""Typed settings, layered: defaults < config.toml < OPEA_CHAT_* variables < CLI flags.

Each setting has one name used everywhere: ``llm_port`` in config.toml, ``OPEA_CHAT_LLM_PORT``
in the environment, ``--llm-port`` on the command line. ``Settings.source_of`` remembers which
layer gave each value, so an error can name the place to change it.

Container images are the one table: ``[images]`` in config.toml (``llm = "my/llama:tag"``),
``OPEA_CHAT_IMAGE_LLM`` in the environment, ``--image llm=my/llama:tag`` on the command line.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launcher.errors import ConfigError
from launcher.paths import Paths
from opea.stack import PROFILES as STACK_PROFILES

ENV_PREFIX = "OPEA_CHAT_"
RUNTIMES = ("auto", "local", "docker")
PROFILES = tuple(STACK_PROFILES)  # what the stack data defines: chat, rag
PULL_POLICIES = ("missing", "always", "never")
DEFAULT = "default"
IMAGE_PREFIX = ENV_PREFIX + "IMAGE_"


@dataclass(frozen=True)
class Settings:
    runtime: str = "auto"
    profile: str = "chat"
    model: str = "smollm2-135m"
    llm_port: int = 9009
    megaservice_port: int = 8888
    app_port: int = 8501
    # 0 lets the LLM server use every core.
    llm_threads: int = 0
    context_size: int = 4096
    # A first start of a large model on a GPU can take minutes; failures are caught at once
    # anyway (a server that exits), so this only bounds a server that hangs.
    llm_start_timeout: float = 300.0
    megaservice_start_timeout: float = 60.0
    app_start_timeout: float = 60.0
    open_browser: bool = True
    # Minutes without any browser tab on the app before the launcher stops (0: never).
    idle_timeout: float = 0.0
    # Docker runtime
    pull: str = "missing"
    gpus: str = "all"
    registry: str = ""
    tag: str = "latest"
    embedding_model: str = "bge-base-en-v1.5"
    reranker_model: str = "bge-reranker-base"
    # Remote runtime: the megaservice's base URL, a PEM file of CAs to verify its certificate
    # with (the system's trust store otherwise), and a file holding a bearer token (or
    # OPEA_CHAT_ENDPOINT_TOKEN, which is read by launcher.remote and is not a setting).
    endpoint: str = ""
    ca_bundle: str = ""
    endpoint_token_file: str = ""
    images: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def source_of(self, name: str) -> str:
        return self.sources.get(name, DEFAULT)

    def is_default(self, name: str) -> bool:
        return self.source_of(name) == DEFAULT


def setting_names() -> list[str]:
    """The scalar settings (``images`` is a table, handled on its own)."""
    return [f.name for f in dataclasses.fields(Settings) if f.name not in ("sources", "images")]


def _field_types() -> dict[str, type]:
    hints = {"int": int, "float": float, "bool": bool, "str": str}
    return {f.name: hints[str(f.type)] for f in dataclasses.fields(Settings)
            if f.name in setting_names()}


def _coerce(name: str, value: Any, where: str) -> Any:
    kind = _field_types()[name]
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"{where}: {name} must be true or false, not {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{where}: {name} must be a whole number, not {value!r}")
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{where}: {name} must be a number, not {value!r}")
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {name} must be a string, not {value!r}")
    return value


def _validate(values: dict[str, Any], sources: dict[str, str]) -> None:
    def fail(name: str, why: str) -> ConfigError:
        return ConfigError(f"{name} = {values[name]!r} ({sources.get(name, DEFAULT)}): {why}")

    for name in ("llm_port", "megaservice_port", "app_port"):
        if not 1 <= values[name] <= 65535:
            raise fail(name, "a port must be between 1 and 65535")
    for name in ("llm_start_timeout", "megaservice_start_timeout", "app_start_timeout"):
        if values[name] <= 0:
            raise fail(name, "a timeout must be more than 0 seconds")
    if values["idle_timeout"] < 0:
        raise fail("idle_timeout", "use 0 to never stop, or a number of minutes")
    if values["llm_threads"] < 0:
        raise fail("llm_threads", "use 0 for all cores, or a positive number")
    if values["context_size"] < 256:
        raise fail("context_size", "the context must hold at least 256 tokens")
    for name, choices in (("runtime", RUNTIMES), ("profile", PROFILES),
                          ("pull", PULL_POLICIES)):
        if values[name] not in choices:
            raise fail(name, f"choose one of {', '.join(choices)}")
    gpus = values["gpus"]
    if gpus not in ("all", "none") and not (gpus.isdigit() and int(gpus) > 0):
        raise fail("gpus", "use all, none, or a number of GPUs")
    if not values["model"].strip():
        raise fail("model", "name a model from `opea-chat models list` or a .gguf file")


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}",
                          hint="fix the file or move it away") from exc
    unknown = sorted(set(data) - {*setting_names(), "images"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting {', '.join(unknown)}",
            hint=f"known settings: {', '.join(setting_names())}",
        )
    images = data.get("images", {})
    if not isinstance(images, dict) or not all(isinstance(v, str) for v in images.values()):
        raise ConfigError(f"{path}: [images] must map service names to image references",
                          hint='e.g. [images] then llm = "ghcr.io/ggml-org/llama.cpp:server"')
    return data


def parse_image_flags(flags: list[str]) -> dict[str, str]:
    """``--image SERVICE=IMAGE`` values as a table."""
    images = {}
    for flag in flags:
        service, sep, image = flag.partition("=")
        if not sep or not service.strip() or not image.strip():
            raise ConfigError(f"--image {flag!r} is not SERVICE=IMAGE",
                              hint="e.g. --image llm=ghcr.io/ggml-org/llama.cpp:server")
        images[service.strip()] = image.strip()
    return images


def load_settings(
    paths: Paths,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the layers; ``flags`` holds only the options the user actually gave."""
    env = os.environ if environ is None else environ
    defaults = Settings()
    values: dict[str, Any] = {name: getattr(defaults, name) for name in setting_names()}
    sources: dict[str, str] = {}

    images: dict[str, str] = {}
    config_path = paths.config_file
    for name, raw in read_config_file(config_path).items():
        if name == "images":
            images.update(raw)
            continue
        values[name] = _coerce(name, raw, str(config_path))
        sources[name] = f"config file {config_path}"

    for name in setting_names():
        variable = ENV_PREFIX + name.upper()
        if variable in env:
            values[name] = _coerce(name, env[variable], f"environment variable {variable}")
            sources[name] = f"environment variable {variable}"

    for variable, image in env.items():
        if variable.startswith(IMAGE_PREFIX) and image:
            images[variable[len(IMAGE_PREFIX):].lower().replace("_", "-")] = image

    for name, raw in (flags or {}).items():
        if raw is None:
            continue
        if name == "images":
            images.update(raw)
            continue
        flag = "--" + name.replace("_", "-")
        values[name] = _coerce(name, raw, f"flag {flag}")
        sources[name] = f"flag {flag}"

    _validate(values, sources)
    return Settings(**values, images=images, sources=sources)
