"""A real full disk for tests: a small tmpfs mounted on a folder, filled with a file of zeros.

Mounting needs root (or CAP_SYS_ADMIN); where it is refused the test is skipped with the
reason. The mount is always undone, even when the test fails.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FILLER = ".filler"


@contextmanager
def small_disk(folder: Path, size: str = "2m") -> Iterator[Path]:
    """``folder`` (made if missing) on a tmpfs of ``size``; unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("a full-disk test needs mount(8) to make a small tmpfs")
    done = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(folder)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"a full-disk test mounts a small tmpfs, which is not permitted here: "
                    f"{done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def fill(folder: Path) -> Path:
    """Take every free byte of the disk holding ``folder``; remove the file to free it."""
    filler = folder / FILLER
    chunk = b"\0" * 65536
    with filler.open("ab") as out:
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError:
            pass
    try:
        # The last partial blocks: one byte at a time until nothing more fits.
        with filler.open("ab", buffering=0) as out:
            while out.write(b"\0"):
                pass
    except OSError:
        pass
    return filler


def free_space(filler: Path) -> None:
    filler.unlink()
