"""Planning ports: a default port that is taken moves, an explicit one fails with its name."""

from __future__ import annotations

from pathlib import Path

import pytest

from launcher.errors import PortInUseError
from launcher.paths import resolve_paths
from launcher.plan import plan_stack
from launcher.settings import load_settings
from models.store import LocalModel

MODEL = LocalModel(name="m", path=Path("/m.gguf"), size_bytes=1)


def test_services_in_dependency_order_on_loopback(home: Path) -> None:
    plan = plan_stack(load_settings(resolve_paths(), {}), MODEL, lambda port: True, lambda: 1)
    assert [s.name for s in plan.services] == ["llm", "megaservice", "app"]
    assert plan.service("megaservice").health_url == "http://127.0.0.1:8888/v1/health_check"
    assert plan.notes == ()


def test_taken_default_port_is_replaced_and_said(home: Path) -> None:
    free_ports = iter([40001, 40002])
    plan = plan_stack(load_settings(resolve_paths(), {}), MODEL,
                      is_free=lambda port: port != 8888, pick_free=lambda: next(free_ports))
    assert plan.service("megaservice").port == 40001
    assert plan.notes == ("port 8888 (megaservice) is in use; using 40001 instead",)


def test_taken_explicit_port_fails_naming_port_and_setting(home: Path) -> None:
    settings = load_settings(resolve_paths(), {"OPEA_CHAT_LLM_PORT": "9555"})
    with pytest.raises(PortInUseError) as caught:
        plan_stack(settings, MODEL, is_free=lambda port: port != 9555, pick_free=lambda: 1)
    line = caught.value.one_line()
    assert "port 9555" in line and "llm_port" in line and "OPEA_CHAT_LLM_PORT" in line
    assert "--llm-port" in line


def test_two_services_never_share_a_port(home: Path) -> None:
    both = load_settings(resolve_paths(), {"OPEA_CHAT_LLM_PORT": "9100"},
                         flags={"app_port": 9100})
    with pytest.raises(PortInUseError) as caught:
        plan_stack(both, MODEL, lambda port: True, lambda: 40001)
    assert caught.value.one_line() == (
        "port 9100 was given twice: to the llm service (llm_port, from environment variable "
        "OPEA_CHAT_LLM_PORT) "
        "and to the app service (app_port, from flag --app-port); give each service its "
        "own port")

    only_llm = load_settings(resolve_paths(), {}, flags={"llm_port": 8501})
    plan = plan_stack(only_llm, MODEL, lambda port: True, lambda: 40001)
    assert plan.service("app").port == 40001
