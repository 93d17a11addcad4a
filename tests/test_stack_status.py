"""What the app reads about the running stack, and the health of each service over real
HTTP."""

from __future__ import annotations

from pathlib import Path

from app.stack_status import DEFAULT_CONTEXT_SIZE, StackInfo, live_status, stack_info
from launcher.ports import pick_free_port
from launcher.records import ControlRecord
from launcher.session_file import write_session
from opea.stack import MEGASERVICE_URL_VARIABLE
from tests.http_stub import reply, serve
from tests.session_records import session_record


def test_the_session_file_gives_runtime_model_context_and_addresses(tmp_path: Path) -> None:
    session = tmp_path / "session.json"
    write_session(session, session_record(
        runtime="local", context_size=2048, model_name="smollm2-135m",
        model_path="/models/s.gguf",
        urls={"llm": "http://127.0.0.1:1", "megaservice": "http://127.0.0.1:2"}))
    info = stack_info({}, session)
    assert info == StackInfo(megaservice_url="http://127.0.0.1:2", runtime="local",
                             model_name="smollm2-135m", model_path="/models/s.gguf",
                             context_size=2048, urls={"llm": "http://127.0.0.1:1",
                                                      "megaservice": "http://127.0.0.1:2"})
    # The launcher's variable names the megaservice the app was started for.
    info = stack_info({MEGASERVICE_URL_VARIABLE: "http://127.0.0.1:3"}, session)
    assert info.megaservice_url == info.urls["megaservice"] == "http://127.0.0.1:3"


def test_without_a_launcher_the_defaults_apply(tmp_path: Path) -> None:
    broken = tmp_path / "session.json"
    broken.write_text("{half")
    for session in (tmp_path / "missing.json", broken):
        info = stack_info({}, session)
        assert info.megaservice_url == "http://127.0.0.1:8888"
        assert info.context_size == DEFAULT_CONTEXT_SIZE and info.model_name is None


def test_the_session_file_names_the_control_channel(tmp_path: Path) -> None:
    session = tmp_path / "session.json"
    write_session(session, session_record(control=ControlRecord(4242, "t0k")))
    assert stack_info({}, session).control == (4242, "t0k")
    write_session(session, session_record())
    assert stack_info({}, session).control is None


def test_without_a_launcher_only_the_megaservice_is_checked() -> None:
    dead = f"http://127.0.0.1:{pick_free_port()}"
    with serve(reply(503, b"loading")) as unhealthy:
        live = live_status(StackInfo(megaservice_url=unhealthy, urls={"llm": dead}), 1.0)
    assert live.device == "unknown (no running launcher)"
    assert [(h.service, h.url, h.healthy, h.detail) for h in live.services] == [
        ("megaservice", unhealthy, False, "HTTP 503")]
    live = live_status(StackInfo(megaservice_url=dead), 1.0)
    assert live.services[0].detail.startswith("not answering")
