"""Private files: opea-chat's folders are 0700 and its files 0600. What is found open is
closed by `launch` (with one line saying so) and named by `doctor` with the fix; a model
added by link stays as the user left it."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.cli import main
from launcher.paths import resolve_paths
from launcher.private_files import (
    close_open_files,
    fix_hint,
    make_private,
    private_roots,
    too_open,
)
from tests.model_files import hf_folder


@pytest.fixture
def open_umask() -> Iterator[None]:
    """What an older opea-chat, a copy or an unpacked backup leaves: 0755 and 0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> str:
    return stat.filemode(path.lstat().st_mode)


def open_home(home: Path) -> dict[str, Path]:
    """A home whose folders and files others may read, and a model linked from outside."""
    made = {
        "config": home / "config" / "config.toml",
        "history": home / "data" / "history.sqlite3",
        "log": home / "logs" / "llm.log",
        "error page": home / "state" / "error.html",
        "partial": home / "models" / ".x.gguf.part" / "piece",
    }
    for path in made.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    made["log"].chmod(0o666)
    own_model = home.parent / "my-model.gguf"
    own_model.write_text("the user's own file")
    (home / "models" / "linked.gguf").symlink_to(own_model)
    made["own model"] = own_model
    return made


def test_what_is_open_is_found_and_closed(home: Path, open_umask: None) -> None:
    made = open_home(home)
    roots = private_roots(resolve_paths())
    assert roots == [home / "config", home / "data", home / "models", home / "state",
                     home / "logs"]
    found = too_open(roots)
    assert set(found) == {*(p for p in made.values() if p.is_relative_to(home)),
                          *(p.parent for p in made.values() if p.is_relative_to(home)),
                          home / "models"}
    assert fix_hint(found[:1], roots) == f"chmod -R go-rwx {home / 'config'}"

    fixed = make_private(found)
    assert sorted(fixed.changed) == sorted(found) and fixed.refused == []
    assert too_open(roots) == []
    assert mode(made["log"]) == "-rw-------" and mode(home / "logs") == "drwx------"
    assert mode(made["own model"]) == "-rw-r--r--"  # the link's target is not ours


def test_the_models_folder_inside_the_data_folder_is_walked_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPEA_CHAT_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    paths = resolve_paths()
    assert paths.models_dir.is_relative_to(paths.data_dir)
    assert paths.models_dir not in private_roots(paths)
    assert paths.data_dir in private_roots(paths)


def test_nothing_open_nothing_said(home: Path) -> None:
    assert close_open_files(resolve_paths()) is None  # no folder yet
    (home / "logs").mkdir(parents=True, mode=0o700)
    (home / "logs" / "llm.log").touch(mode=0o600)
    assert close_open_files(resolve_paths()) is None


@pytest.fixture
def home_nobody_reaches(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home outside pytest's temporary folder, which only root may enter."""
    root = Path(tempfile.mkdtemp(prefix="opea-chat-test-"))
    root.chmod(0o755)
    monkeypatch.setenv("OPEA_CHAT_HOME", str(root / "home"))
    yield root / "home"
    shutil.rmtree(root)


def test_a_file_that_is_not_yours_is_named_not_hidden(home_nobody_reaches: Path,
                                                      open_umask: None) -> None:
    """chmod is refused for a file another user owns (say, written by a container as
    root); the launch says so with the command for its owner. Run as user nobody."""
    if os.geteuid() != 0:
        pytest.skip("needs root to hand the home to another user")
    home = home_nobody_reaches
    logs = home / "logs"
    logs.mkdir(parents=True)
    (logs / "theirs.log").write_text("")  # root's, 0644
    nobody = 65534
    os.chown(home, nobody, nobody)
    os.chown(logs, nobody, nobody)
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the user nobody, running what launch runs (no exec: root's Python)
        try:
            os.setgid(nobody)
            os.setuid(nobody)
            os.write(writer, str(close_open_files(resolve_paths())).encode())
        except BaseException as error:
            os.write(writer, repr(error).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as said:
        line = said.read()
    os.waitpid(child, 0)
    assert line == (
        f"Made 1 file or folder private (others could read them): {logs}; Warning: 1 cannot "
        f"be made private (Operation not permitted), e.g. {logs / 'theirs.log'}: run "
        f"`chmod -R go-rwx {logs}` as their owner")
    assert mode(logs) == "drwx------" and mode(logs / "theirs.log") == "-rw-r--r--"


def test_launch_closes_an_open_home_and_says_so(home: Path, open_umask: None) -> None:
    """The fix comes first: even a launch that then fails (an unknown model here, so that
    nothing is started) leaves the home private."""
    made = open_home(home)
    result = subprocess.run(
        [sys.executable, "-m", "launcher", "launch", "--runtime", "local", "--no-browser",
         "--model", "no-such-model"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "OPEA_CHAT_HOME": str(home)}, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"^Error: unknown model 'no-such-model'", result.stderr, re.M)
    lines = [line for line in result.stdout.splitlines() if "private" in line]
    assert len(lines) == 1, result.stdout
    assert re.fullmatch(r"Made 11 files and folders private \(others could read them\): "
                        rf"{re.escape(str(home))}/\S+ and 10 more", lines[0]), lines
    assert [p for p in home.rglob("*") if not p.is_symlink() and p.lstat().st_mode & 0o077] \
        == []
    # What the launch itself wrote (its lock file) is private from the start.
    assert mode(home / "state" / "launch.lock") == "-rw-------"
    assert mode(made["own model"]) == "-rw-r--r--"


def test_a_model_folder_copied_in_is_private_a_linked_one_is_left_alone(
        home: Path, tmp_path: Path, open_umask: None,
        capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "tiny-llama"
    hf_folder(source)  # 0755 and 0644, as most folders on a disk
    assert main(["models", "pull", str(source)]) == 0
    copied = home / "models" / "tiny-llama"
    assert sorted(path.name for path in copied.iterdir()) == sorted(
        path.name for path in source.iterdir())
    assert too_open([home / "models"]) == []

    linked_source = tmp_path / "linked" / "tiny-llama"
    hf_folder(linked_source)
    (home / "models" / "tiny-llama").rename(tmp_path / "moved-aside")
    assert main(["models", "pull", "--link", str(linked_source)]) == 0
    assert mode(linked_source / "config.json") == "-rw-r--r--"
    assert mode(linked_source) == "drwxr-xr-x"
