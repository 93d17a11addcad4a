"""Planning ports: a default port that is taken moves, an explicit one fails with its name;
and where each service runs (its placement), decided once in the plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from launcher.errors import PortInUseError
from launcher.gpu import GpuReport
from launcher.local_runtime import LocalRuntime, service_command
from launcher.paths import resolve_paths
from launcher.plan import Placement, plan_stack
from launcher.progress import Progress
from launcher.settings import load_settings
from models.errors import ModelError
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


@pytest.mark.parametrize(("runtime", "profile", "in_containers"), [
    ("local", "chat", set()),
    ("remote", "chat", set()),
    ("docker", "chat", {"llm", "megaservice"}),
    ("docker", "rag", {"llm", "megaservice", "embedding", "reranking", "vector-db",
                       "retriever", "dataprep"}),
])
def test_each_service_is_placed_once_the_app_always_as_a_process(
        home: Path, runtime: str, profile: str, in_containers: set[str]) -> None:
    settings = load_settings(resolve_paths(), {}, flags={"profile": profile})
    plan = plan_stack(settings, MODEL, lambda port: True, lambda: 1, runtime=runtime)
    placed = {s.name: s.placement for s in plan.services}
    assert placed["app"] is Placement.PROCESS
    assert {name for name, p in placed.items() if p is Placement.CONTAINER} == in_containers


def test_the_local_rag_profile_runs_chatqnas_graph_as_processes(home: Path) -> None:
    """No vector DB and no reranker: the embedding, dataprep and retriever processes (the
    last two once embedding answers, as rag/README.md asks), the megaservice with the rag
    graph and the app, which use them; the plan says reranking is off."""
    settings = load_settings(resolve_paths(), {}, flags={"profile": "rag"})
    plan = plan_stack(settings, MODEL, lambda port: True, lambda: 1, runtime="local")
    assert [s.name for s in plan.services] == [
        "llm", "embedding", "dataprep", "retriever", "megaservice", "app"]
    assert plan.service("megaservice").spec.needs == ("llm", "embedding", "retriever")
    assert plan.service("app").spec.needs == ("megaservice", "dataprep")
    assert plan.service("dataprep").spec.waits_for == ("embedding",)
    assert [s.port for s in plan.services] == [9009, 6006, 6007, 7000, 8888, 8501]
    assert any(note.startswith("reranking off") for note in plan.notes)

    mega = service_command(plan.service("megaservice"), plan)
    assert mega[mega.index("--embedding-url") + 1] == "http://127.0.0.1:6006"
    assert mega[mega.index("--retriever-url") + 1] == "http://127.0.0.1:7000"
    home_paths = resolve_paths()
    for name in ("dataprep", "retriever"):
        command = service_command(plan.service(name), plan)
        assert command[1:3] == ["-m", f"rag.{name}_server"]
        assert command[command.index("--data-dir") + 1] == str(home_paths.data_dir / "rag")
    embedding = service_command(plan.service("embedding"), plan)
    assert embedding[embedding.index("--model-dir") + 1] == str(
        home_paths.models_dir / "all-minilm-l6-v2")


def test_a_rag_launch_refuses_a_damaged_embedding_model_before_starting_anything(
        home: Path) -> None:
    settings = load_settings(resolve_paths(), {}, flags={"profile": "rag"})
    plan = plan_stack(settings, MODEL, lambda port: True, lambda: 1, runtime="local")
    folder = Path(plan.values["embedding_model_dir"])
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"onnx")
    runtime = LocalRuntime(home / "logs", GpuReport())
    with pytest.raises(ModelError, match="embedding model all-minilm-l6-v2 has no tokenizer"):
        runtime.prepare(plan, Progress())
    assert runtime.records() == []


def test_the_embedding_model_setting_names_the_local_embedding_folder(home: Path,
                                                                      tmp_path: Path) -> None:
    for value, expected in (("all-MiniLM-L6-v2", resolve_paths().models_dir / "all-minilm-l6-v2"),
                            (str(tmp_path / "mine"), tmp_path / "mine")):
        settings = load_settings(resolve_paths(), {},
                                 flags={"profile": "rag", "embedding_model": value})
        plan = plan_stack(settings, MODEL, lambda port: True, lambda: 1, runtime="local")
        assert plan.values["embedding_model_dir"] == str(expected)
