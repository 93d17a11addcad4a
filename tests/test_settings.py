"""Settings: defaults < config.toml < OPEA_CHAT_* < flags, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from launcher.cli import build_parser
from launcher.errors import ConfigError
from launcher.paths import resolve_paths
from launcher.settings import (
    PullPolicy,
    RuntimeName,
    Settings,
    load_settings,
    setting_flags,
    setting_names,
    with_table,
)
from launcher.settings import main as settings_main


def write_config(home: Path, text: str) -> None:
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "config.toml").write_text(text)


def test_opea_chat_home_moves_every_folder_under_it(home: Path) -> None:
    paths = resolve_paths()
    for folder in (paths.config_dir, paths.data_dir, paths.models_dir, paths.state_dir,
                   paths.log_dir):
        assert folder.is_relative_to(home)
    assert paths.config_file == home / "config" / "config.toml"


def test_without_home_variable_platform_folders_are_used() -> None:
    paths = resolve_paths(environ={})
    assert "opea-chat" in str(paths.config_dir)
    assert paths.models_dir.parent == paths.data_dir


def test_layers_override_in_order_and_remember_their_source(home: Path) -> None:
    write_config(home, 'llm_port = 9100\nmegaservice_port = 9101\napp_port = 9102\n')
    environ = {"OPEA_CHAT_MEGASERVICE_PORT": "9201", "OPEA_CHAT_APP_PORT": "9202"}
    settings = load_settings(resolve_paths(), environ, flags={"app_port": 9302, "model": None})
    assert (settings.llm_port, settings.megaservice_port, settings.app_port) == (9100, 9201, 9302)
    assert settings.source_of("llm_port").startswith("config file ")
    assert settings.source_of("megaservice_port") == (
        "environment variable OPEA_CHAT_MEGASERVICE_PORT")
    assert settings.source_of("app_port") == "flag --app-port"
    assert settings.is_default("model") and settings.model == Settings().model


@pytest.mark.parametrize("value,expected", [("false", False), ("0", False), ("yes", True)])
def test_boolean_variables(home: Path, value: str, expected: bool) -> None:
    settings = load_settings(resolve_paths(), {"OPEA_CHAT_OPEN_BROWSER": value})
    assert settings.open_browser is expected


@pytest.mark.parametrize(
    "config,message",
    [
        ("llm_port = 'high'", "llm_port must be a whole number, not 'high'"),
        ("llm_port = 70000", "a port must be between 1 and 65535"),
        ("runtime = 'cloud'", "choose one of auto, local"),
        ("llm_start_timeout = 0", "a timeout must be more than 0 seconds"),
        ("modle = 'x'", "unknown setting modle"),
        ("llm_port = ", "is not valid TOML"),
    ],
)
def test_bad_config_file_gives_one_clear_error(home: Path, config: str, message: str) -> None:
    write_config(home, config + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(resolve_paths(), {})
    assert message in caught.value.one_line()
    assert "\n" not in caught.value.message


def test_bad_environment_value_names_the_variable(home: Path) -> None:
    with pytest.raises(ConfigError, match="environment variable OPEA_CHAT_LLM_PORT"):
        load_settings(resolve_paths(), {"OPEA_CHAT_LLM_PORT": "eighty"})


def test_the_configuration_doc_lists_every_setting_as_declared() -> None:
    # Regenerate with: python -m launcher.settings --markdown docs/configuration.md
    doc = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    assert with_table(doc) == doc
    for name in setting_names():
        assert f"| `{name}` | `OPEA_CHAT_{name.upper()}` |" in doc


def test_the_doc_generator_refuses_a_file_without_its_markers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "configuration.md"
    doc.write_text("# Configuration\n")
    assert settings_main(["--markdown", str(doc)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {doc}: no place for the settings table; put the lines <!--")
    assert doc.read_text() == "# Configuration\n"
    assert settings_main(["--markdown", str(tmp_path / "missing.md")]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_flags_come_from_the_declarations_and_give_typed_values(home: Path) -> None:
    args = build_parser().parse_args(
        ["launch", "--no-browser", "--pull", "never", "--runtime", "local",
         "--idle-timeout", "5", "--llm-port", "9100"])
    settings = load_settings(resolve_paths(), {}, setting_flags(args))
    assert settings.open_browser is False and settings.source_of("open_browser") == (
        "flag --no-browser")
    assert settings.pull is PullPolicy.NEVER
    assert settings.runtime is RuntimeName.LOCAL
    assert (settings.idle_timeout, settings.llm_port) == (5.0, 9100)
    assert settings.is_default("context_size")


def test_enum_settings_from_the_environment_and_the_config_file(home: Path) -> None:
    write_config(home, 'pull = "always"\n')
    settings = load_settings(resolve_paths(), {"OPEA_CHAT_RUNTIME": "docker"})
    assert settings.runtime is RuntimeName.DOCKER
    assert settings.pull is PullPolicy.ALWAYS
    assert Settings().runtime is RuntimeName.AUTO and Settings().pull is PullPolicy.MISSING
