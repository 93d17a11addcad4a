"""Private files: what opea-chat keeps (history, session, logs, config, models, the RAG
index) is for the user alone, on a shared machine too.

Its folders are 0700 and its files 0600. Whatever opea-chat and its children create is so
by the umask the CLI sets (``PRIVATE_UMASK``); what an older version, a copy or an
extraction left open is found by ``too_open`` and closed by ``make_private``, at launch;
``doctor`` reports it with the fix.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from launcher.paths import Paths

# Group and others get nothing: new folders 0700, new files 0600.
PRIVATE_UMASK = 0o077
OPEN_BITS = stat.S_IRWXG | stat.S_IRWXO


def private_roots(paths: Paths) -> list[Path]:
    """opea-chat's own folders, without one that lies inside another (the models folder
    is inside the data folder by default)."""
    folders = list(dict.fromkeys([paths.config_dir, paths.data_dir, paths.models_dir,
                                  paths.state_dir, paths.log_dir]))
    return [folder for folder in folders
            if not any(folder != other and folder.is_relative_to(other) for other in folders)]


def _mode(path: Path) -> int | None:
    """The permission bits of ``path`` itself, None for a link (a model added with
    ``--link`` points at the user's own file, which is not ours to change) or for what
    vanished meanwhile."""
    try:
        status = path.lstat()
    except FileNotFoundError:
        return None
    return None if stat.S_ISLNK(status.st_mode) else stat.S_IMODE(status.st_mode)


def _walk(root: Path) -> Iterable[Path]:
    if not root.exists() or root.is_symlink():
        return
    yield root
    for folder, dirs, files in os.walk(root):  # links are not followed
        for name in (*dirs, *files):
            yield Path(folder, name)


def too_open(roots: Iterable[Path]) -> list[Path]:
    """Every folder and file under ``roots`` (the roots included) that its group or
    others may read, write or enter."""
    return [path for root in roots for path in _walk(root)
            if (mode := _mode(path)) is not None and mode & OPEN_BITS]


@dataclass
class Fixed:
    changed: list[Path] = field(default_factory=list)
    # chmod refused: another user's file (a container's, say), a read-only disk.
    refused: list[Path] = field(default_factory=list)
    why: str = ""  # the first refusal's reason


def make_private(found: Iterable[Path]) -> Fixed:
    """Take group's and others' permissions away from each path (the owner's stay)."""
    fixed = Fixed()
    for path in found:
        mode = _mode(path)
        if mode is None:
            continue
        try:
            path.chmod(mode & ~OPEN_BITS)
        except OSError as error:
            fixed.refused.append(path)
            fixed.why = fixed.why or error.strerror or type(error).__name__
        else:
            fixed.changed.append(path)
    return fixed


def fix_hint(paths: Iterable[Path], roots: Iterable[Path]) -> str:
    """The command that closes what ``too_open`` found."""
    where = [root for root in roots if any(path.is_relative_to(root) for path in paths)]
    return f"chmod -R go-rwx {' '.join(str(root) for root in where)}"


def describe(fixed: Fixed, roots: list[Path]) -> str | None:
    """The one line a launch prints about what it closed; None when nothing was open."""
    if not fixed.changed and not fixed.refused:
        return None
    line = ""
    if fixed.changed:
        count = len(fixed.changed)
        line = (f"Made {count} {'file or folder' if count == 1 else 'files and folders'} "
                f"private (others could read them): {fixed.changed[0]}"
                + (f" and {count - 1} more" if count > 1 else ""))
    if fixed.refused:
        line += ("; " if line else "") + (
            f"Warning: {len(fixed.refused)} cannot be made private ({fixed.why}), e.g. "
            f"{fixed.refused[0]}: run `{fix_hint(fixed.refused, roots)}` as their owner")
    return line


def close_open_files(paths: Paths) -> str | None:
    """Close whatever is open in opea-chat's folders; the line to tell the user, if any."""
    roots = private_roots(paths)
    return describe(make_private(too_open(roots)), roots)
