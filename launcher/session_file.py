"""The session file: what the running launcher started, so other commands can find it.

Written atomically (temporary file, then rename) after each service starts, so a launcher
killed at any moment leaves a file that names everything it had started. It holds the
control channel's token, so only its owner may read it (mode 0600). Its contents are a
``launcher.records.SessionRecord``; a damaged or old file is a ``SessionFileError``, and
``read_for_cleanup`` still gives `stop` what can be saved from it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from launcher.errors import RecordError, SessionFileError
from launcher.records import Salvage, SessionRecord, salvage

CLEANUP_HINT = "`opea-chat stop` ends what it recorded and removes it"


def write_session(path: Path, record: SessionRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(record.to_json(), indent=2))
    temporary.replace(path)


def _load(path: Path) -> object:
    """The file's JSON; None when there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise SessionFileError(f"cannot read the session file {path} ({error})",
                               hint=CLEANUP_HINT) from error
    try:
        return json.loads(text)
    except ValueError as error:
        raise SessionFileError(f"the session file {path} is damaged (not JSON)",
                               hint=CLEANUP_HINT) from error


def read_session(path: Path) -> SessionRecord | None:
    """The session record; None when there is no session file."""
    data = _load(path)
    if data is None:
        return None
    try:
        return SessionRecord.from_json(data)
    except RecordError as error:
        raise SessionFileError(f"cannot use the session file {path}: {error.message}",
                               hint=CLEANUP_HINT) from error


def read_for_cleanup(path: Path) -> tuple[SessionRecord | None, Salvage | None, str | None]:
    """(record, what it names for clean-up, the problem with it); both None when there is
    no file. Never raises: a file that cannot be read whole still gives its intact PIDs."""
    try:
        record = read_session(path)
    except SessionFileError as error:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        return None, salvage(data), error.message
    return record, record.salvage() if record is not None else None, None


def remove_session(path: Path) -> None:
    path.unlink(missing_ok=True)
