"""Session records as a launcher writes them, for tests that stand in for a launcher."""

from __future__ import annotations

import time
from typing import Any

from launcher.records import ControlRecord, ModelRecord, SessionRecord


def session_record(*, launcher_pid: int = 1, launcher_create_time: float = 0.0,
                   runtime: str = "local", model_name: str = "smollm2-135m",
                   model_path: str = "/models/s.gguf", context_size: int = 4096,
                   urls: dict[str, str] | None = None, control: ControlRecord | None = None,
                   **more: Any) -> SessionRecord:
    return SessionRecord(
        launcher_pid=launcher_pid, launcher_create_time=launcher_create_time,
        runtime=runtime, profile="chat",
        model=ModelRecord(name=model_name, path=model_path, format="gguf"),
        context_size=context_size, started_at=time.time(), urls=urls or {},
        services=(), control=control, **more)
