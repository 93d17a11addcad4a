"""The session file: what the running launcher started, so other commands can find it.

Written atomically (temporary file, then rename) after each service starts, so a launcher
killed at any moment leaves a file that names everything it had started. It holds the
control channel's token, so only its owner may read it (mode 0600).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_session(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(record, indent=2))
    temporary.replace(path)


def read_session(path: Path) -> dict[str, Any] | None:
    try:
        record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return record


def remove_session(path: Path) -> None:
    path.unlink(missing_ok=True)
