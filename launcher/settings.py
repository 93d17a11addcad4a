"""Typed settings, layered: defaults < config.toml < OPEA_CHAT_* variables < CLI flags.

Each setting is declared once, as a field of ``Settings``: its type (the annotation), its
default, and in ``setting(...)`` its help, flag and check. Its one name is used everywhere:
``llm_port`` in config.toml, ``OPEA_CHAT_LLM_PORT`` in the environment, ``--llm-port`` on the
command line. The command line's flags (``add_setting_flags``), the validation
(``load_settings``) and the table in docs/configuration.md
(``python -m launcher.settings --markdown docs/configuration.md``) are made from these
declarations. ``Settings.source_of`` remembers which layer gave each value, so an error can
name the place to change it.

Container images are the one table: ``[images]`` in config.toml (``llm = "my/llama:tag"``),
``OPEA_CHAT_IMAGE_LLM`` in the environment, ``--image llm=my/llama:tag`` on the command line.

Not pydantic-settings (installed through opea-comps): importing it costs 0.15 to 0.5 s
(``python -X importtime``, this machine) against 0.06 s for this whole module, on every
``opea-chat`` command (``--help`` takes 0.4 s today) and on the app's start; and its command
line source does not fit flags that only some subcommands have.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

from launcher.errors import ConfigError
from launcher.paths import Paths
from opea.stack import OPEA_RELEASE
from opea.stack import PROFILES as STACK_PROFILES

ENV_PREFIX = "OPEA_CHAT_"
DEFAULT = "default"
IMAGE_PREFIX = ENV_PREFIX + "IMAGE_"
T = TypeVar("T")


class RuntimeName(StrEnum):
    """Where the services run (``--runtime``); see the README's "Runtimes"."""

    AUTO = "auto"
    LOCAL = "local"
    DOCKER = "docker"
    REMOTE = "remote"  # only the app here, pointed at a megaservice elsewhere (endpoint)


class PullPolicy(StrEnum):
    """When the docker runtime pulls an image (``--pull``)."""

    MISSING = "missing"
    ALWAYS = "always"
    NEVER = "never"


class Flag(StrEnum):
    """Which commands take a setting as a flag."""

    STACK = "stack"  # launch and export compose (they plan the same stack)
    LAUNCH = "launch"  # launch only


Check = Callable[[Any], str | None]  # why a value is refused, or None


@dataclass(frozen=True)
class SettingInfo:
    """What ``setting(...)`` declares beside the type and default."""

    help: str
    flag: Flag | None = None
    flag_name: str | None = None  # a bool's flag: the one that turns it off (--no-browser)
    metavar: str | None = None
    choices: tuple[str, ...] = ()  # for a str setting whose values are data (profiles)
    check: Check | None = None


def setting(default: T, help: str, *, flag: Flag | None = None, flag_name: str | None = None,
            metavar: str | None = None, choices: Sequence[str] = (),
            check: Check | None = None) -> T:
    """One setting's declaration: a ``Settings`` field with its help, flag and check."""
    info = SettingInfo(help, flag, flag_name, metavar, tuple(choices), check)
    result: T = field(default=default, metadata={"setting": info})
    return result


def _port(value: int) -> str | None:
    return None if 1 <= value <= 65535 else "a port must be between 1 and 65535"


def _timeout(value: float) -> str | None:
    return None if value > 0 else "a timeout must be more than 0 seconds"


def _gpus(value: str) -> str | None:
    ok = value in ("all", "none") or (value.isdigit() and int(value) > 0)
    return None if ok else "use all, none, or a number of GPUs"


def _at_least(minimum: float, why: str) -> Check:
    return lambda value: None if value >= minimum else why


@dataclass(frozen=True)
class Settings:
    runtime: RuntimeName = setting(
        RuntimeName.AUTO, "where the services run (see the README's \"Runtimes\")",
        flag=Flag.STACK)
    profile: str = setting(
        "chat", "which services (`rag`: docker runtime only)", flag=Flag.STACK,
        choices=tuple(STACK_PROFILES))
    model: str = setting(
        "smollm2-135m", "a model from `opea-chat models list`, a .gguf file, or a Hugging "
        "Face model folder (docker runtime)", flag=Flag.STACK, metavar="NAME|PATH",
        check=lambda value: None if value.strip() else
        "name a model from `opea-chat models list` or a .gguf file")
    llm_port: int = setting(9009, "port of the LLM server on 127.0.0.1", flag=Flag.STACK,
                            metavar="PORT", check=_port)
    megaservice_port: int = setting(8888, "port of the OPEA megaservice on 127.0.0.1",
                                    flag=Flag.STACK, metavar="PORT", check=_port)
    app_port: int = setting(8501, "port of the chat page on 127.0.0.1", flag=Flag.STACK,
                            metavar="PORT", check=_port)
    llm_threads: int = setting(
        0, "CPU threads for the local LLM (0: all cores)", flag=Flag.STACK, metavar="N",
        check=_at_least(0, "use 0 for all cores, or a positive number"))
    context_size: int = setting(
        4096, "the model's context window in tokens; the app fits conversations into it",
        flag=Flag.STACK, metavar="TOKENS",
        check=_at_least(256, "the context must hold at least 256 tokens"))
    # A first start of a large model on a GPU can take minutes; failures are caught at once
    # anyway (a server that exits), so this only bounds a server that hangs.
    llm_start_timeout: float = setting(
        300.0, "seconds to wait for the LLM to be healthy (a server that exits fails at once)",
        check=_timeout)
    megaservice_start_timeout: float = setting(
        60.0, "seconds to wait for the megaservice to be healthy", check=_timeout)
    app_start_timeout: float = setting(
        60.0, "seconds to wait for the chat page to be healthy", check=_timeout)
    # The chat page's bound on a model that sends nothing (app/generation.py).
    answer_timeout: float = setting(
        60.0, "seconds the chat page waits for the model's next token before it says the "
        "model is not responding (and ends that answer)", check=_timeout)
    # A full data disk stops conversations from being saved (app/history.py): warn early.
    data_disk_warn_mb: int = setting(
        500, "`status` and `doctor` warn when the disk of the data folder (the chat history) "
        "has less than this many MB free (0: never)", metavar="MB",
        check=_at_least(0, "use 0 to never warn, or a number of MB"))
    open_browser: bool = setting(True, "open the chat page in the browser when ready",
                                 flag=Flag.LAUNCH, flag_name="--no-browser")
    idle_timeout: float = setting(
        0.0, "minutes without any browser tab on the app before stopping by itself "
        "(0: never)", flag=Flag.LAUNCH, metavar="MINUTES",
        check=_at_least(0, "use 0 to never stop, or a number of minutes"))
    pull: PullPolicy = setting(
        PullPolicy.MISSING, "docker: when to pull an image (`missing`: only if it is not "
        "here)", flag=Flag.STACK)
    gpus: str = setting("all", "docker: GPUs for the services that need one: all, none, "
                        "or a number", flag=Flag.STACK, metavar="all|N|none", check=_gpus)
    registry: str = setting(
        "", "docker: the namespace of the `opea/*` images, like OPEA's `REGISTRY` "
        "(`${REGISTRY:-opea}/chatqna`: empty means `opea`)")
    tag: str = setting(OPEA_RELEASE, "docker: tag of the `opea/*` images, like OPEA's `TAG` "
                       "(default: the release of the pinned opea-comps)")
    embedding_model: str = setting(
        "bge-base-en-v1.5", "rag: the embedding model (docker: a TEI model folder in the "
        "models folder; local: all-minilm-l6-v2, used when this is left at its default)",
        flag=Flag.STACK, metavar="NAME|PATH")
    reranker_model: str = setting(
        "bge-reranker-base", "rag: the reranker model's folder inside the models folder")
    # The remote runtime's bearer token is not a setting: launcher.remote reads it from
    # OPEA_CHAT_ENDPOINT_TOKEN or endpoint_token_file, so no settings listing can show it.
    endpoint: str = setting(
        "", "remote: the base URL of the ChatQnA megaservice to use (e.g. "
        "https://chat.example.com, or http://127.0.0.1:8888 through a kubectl port-forward)",
        flag=Flag.LAUNCH, metavar="URL")
    ca_bundle: str = setting(
        "", "remote: a PEM file of the CAs that sign the endpoint's certificate (default: the "
        "system's trust store; certificates are always verified)")
    endpoint_token_file: str = setting(
        "", "remote: a file holding the endpoint's bearer token (or set "
        "OPEA_CHAT_ENDPOINT_TOKEN)")
    images: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def source_of(self, name: str) -> str:
        return self.sources.get(name, DEFAULT)

    def is_default(self, name: str) -> bool:
        return self.source_of(name) == DEFAULT


@dataclass(frozen=True)
class Declared:
    """One scalar setting as declared: name, type, default and the rest."""

    name: str
    kind: type
    default: Any
    info: SettingInfo

    @property
    def variable(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return self.info.flag_name or "--" + self.name.replace("_", "-")

    @property
    def choices(self) -> tuple[str, ...]:
        if issubclass(self.kind, Enum):
            return tuple(member.value for member in self.kind)
        return self.info.choices


@cache
def declared() -> tuple[Declared, ...]:
    """The scalar settings (``images`` is a table, handled on its own), in order."""
    types = get_type_hints(Settings)
    return tuple(Declared(f.name, types[f.name], f.default, f.metadata["setting"])
                 for f in dataclasses.fields(Settings) if "setting" in f.metadata)


def setting_names() -> list[str]:
    return [item.name for item in declared()]


def _declared(name: str) -> Declared:
    return next(item for item in declared() if item.name == name)


def _coerce(item: Declared, value: Any, where: str) -> Any:
    """``value`` as the setting's type (an enum's value stays a string until it is checked)."""
    name, kind = item.name, item.kind
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


def _problem(item: Declared, value: Any) -> str | None:
    if item.choices and value not in item.choices:
        return f"choose one of {', '.join(item.choices)}"
    return item.info.check(value) if item.info.check else None


def _typed(item: Declared, value: Any) -> Any:
    """A coerced value as the setting's enum, where it is one of its values."""
    if issubclass(item.kind, Enum) and value in item.choices:
        return item.kind(value)
    return value


def typed_value(name: str, value: Any, where: str) -> Any:
    """One setting's value as its declared type, not checked (see ``load_settings``)."""
    item = _declared(name)
    return _typed(item, _coerce(item, value, where))


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}",
                          hint="fix the file or move it away") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{path} is a folder, not a file",
                          hint="move it away; the settings file is a TOML text file") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}",
                          hint="check its permissions, or move it away") from exc
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
    by_name = {item.name: item for item in declared()}
    values: dict[str, Any] = {name: item.default for name, item in by_name.items()}
    sources: dict[str, str] = {}

    images: dict[str, str] = {}
    config_path = paths.config_file
    for name, raw in read_config_file(config_path).items():
        if name == "images":
            images.update(raw)
            continue
        values[name] = _coerce(by_name[name], raw, str(config_path))
        sources[name] = f"config file {config_path}"

    for item in declared():
        if item.variable in env:
            values[item.name] = _coerce(item, env[item.variable],
                                        f"environment variable {item.variable}")
            sources[item.name] = f"environment variable {item.variable}"

    for variable, image in env.items():
        if variable.startswith(IMAGE_PREFIX) and image:
            images[variable[len(IMAGE_PREFIX):].lower().replace("_", "-")] = image

    for name, raw in (flags or {}).items():
        if raw is None:
            continue
        if name == "images":
            images.update(raw)
            continue
        item = by_name[name]
        values[name] = _coerce(item, raw, f"flag {item.flag}")
        sources[name] = f"flag {item.flag}"

    for item in declared():
        problem = _problem(item, values[item.name])
        if problem:
            where = sources.get(item.name, DEFAULT)
            raise ConfigError(f"{item.name} = {values[item.name]!r} ({where}): {problem}")
        values[item.name] = _typed(item, values[item.name])
    return Settings(**values, images=images, sources=sources)


# The command line ---------------------------------------------------------------------


def add_setting_flags(parser: argparse.ArgumentParser, *scopes: Flag) -> None:
    """The flags of the settings declared for ``scopes``; each stores under the setting's
    name and stays None unless given (``setting_flags`` collects them)."""
    for item in declared():
        if item.info.flag not in scopes:
            continue
        if item.kind is bool:
            # The flag turns the default off (--no-browser), or on.
            verb = "do not " if item.default else ""
            parser.add_argument(item.flag, dest=item.name, action="store_const",
                                const=not item.default, help=verb + item.info.help)
            continue
        kind = item.kind if item.kind in (int, float) else str
        parser.add_argument(item.flag, dest=item.name, type=kind,
                            choices=item.choices or None, metavar=item.info.metavar,
                            help=f"{item.info.help} (default {_plain(item.default)})")


def setting_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags (None: not given), for ``load_settings``."""
    return {item.name: getattr(args, item.name) for item in declared()
            if hasattr(args, item.name)}


# docs/configuration.md ----------------------------------------------------------------

TABLE_START = "<!-- settings: made by `python -m launcher.settings --markdown FILE` -->"
TABLE_END = "<!-- end of settings -->"


def _plain(value: Any) -> str:
    """A default as a user writes it: true, 300, auto, ""."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return '""' if value == "" else str(value)


def markdown_table() -> str:
    """The settings as the table of docs/configuration.md."""
    rows = ["| setting | variable | flag | default | meaning |", "|---|---|---|---|---|"]
    for item in declared():
        flag = f"`{item.flag}`" if item.info.flag else ""
        meaning = item.info.help
        if item.choices:
            meaning += f"; one of {', '.join(f'`{choice}`' for choice in item.choices)}"
        rows.append(f"| `{item.name}` | `{item.variable}` | {flag} | `{_plain(item.default)}` "
                    f"| {meaning} |")
    return "\n".join(rows)


def with_table(document: str) -> str:
    """``document`` with the part between the table's markers made anew."""
    start, end = document.find(TABLE_START), document.find(TABLE_END)
    if start < 0 or end < start:
        raise ConfigError("no place for the settings table",
                          hint=f"put the lines {TABLE_START} and {TABLE_END} where it goes")
    return (document[:start] + TABLE_START + "\n\n" + markdown_table() + "\n\n"
            + document[end:])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m launcher.settings",
        description="Write the settings table (made from launcher/settings.py) into a "
                    "Markdown file, between its markers.")
    parser.add_argument("--markdown", metavar="FILE", type=Path, required=True)
    args = parser.parse_args(argv)
    path: Path = args.markdown
    try:
        path.write_text(with_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    except (OSError, ConfigError) as error:
        print(f"Error: {path}: {error}", file=sys.stderr)
        return 1
    print(f"Wrote the settings table into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
