"""A nearly full disk, through the real command line: `status` and `doctor` warn when the
data folder (the chat history) runs out of room, below the ``data_disk_warn_mb`` setting.
The disk is a real small tmpfs, filled with a file of zeros."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.errors import ModelError
from models.pull import pull_model
from tests.full_disk import FILLER, fill, free_space, small_disk


def opea_chat(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True,
                          text=True, timeout=120, check=False, env=env)


def test_status_and_doctor_warn_when_the_data_disk_is_nearly_full(home: Path) -> None:
    data = home / "data"
    with small_disk(data, size="4m"):
        status = opea_chat("status")
        assert (status.returncode, status.stdout, status.stderr) == (
            3, "opea-chat is not running.\n"
               f"Warning: only 4.2 MB free at {data}, less than 500.0 MB (data_disk_warn_mb); "
               "on a full disk the chat history cannot save conversations; free some space "
               "on that disk\n", "")
        filler = fill(data)
        as_json = json.loads(opea_chat("status", "--json").stdout)
        assert as_json == {"running": False, "warnings": [
            f"only 0 B free at {data}, less than 500.0 MB (data_disk_warn_mb); on a full disk "
            "the chat history cannot save conversations; free some space on that disk"]}

        doctor = opea_chat("doctor", "--json", "--runtime", "local")
        [check] = [c for c in json.loads(doctor.stdout) if c["name"] == "disk data"]
        assert check["status"] == "warn" and check["detail"].startswith(f"only 0 B free at {data}")
        assert check["fix"] == "free some space on that disk"

        free_space(filler)
        (home / "config").mkdir()
        (home / "config" / "config.toml").write_text("data_disk_warn_mb = 1\n")
        status = opea_chat("status")
        assert status.stdout == "opea-chat is not running.\n"  # 4 MB free, above 1 MB
        doctor = opea_chat("doctor", "--json", "--runtime", "local")
        [check] = [c for c in json.loads(doctor.stdout) if c["name"] == "disk data"]
        assert (check["status"], check["detail"]) == (
            "pass", f"4.2 MB free at {data} for the chat history")


def test_a_pull_onto_a_full_disk_says_how_much_room_there_is_and_leaves_nothing(
        home: Path) -> None:
    models = home / "models"
    with small_disk(models):
        pull = opea_chat("models", "pull", "smollm2-135m")
        assert (pull.returncode, pull.stdout) == (1, "")
        assert pull.stderr == (
            f"Error: not enough space on {models}: 2 MB free, the model needs 98 MB; free some "
            "space on that disk, or point OPEA_CHAT_HOME at a bigger one, then pull again\n")
        assert list(models.iterdir()) == []


@pytest.mark.parametrize("source", ["catalogue", "local file"])
def test_a_disk_that_fills_during_a_pull_says_so_and_leaves_nothing_partial(
        tmp_path: Path, smollm2: Path, source: str) -> None:
    models = tmp_path / "models"
    with small_disk(models, size="160m"):
        def fill_once_started(text: str) -> None:
            if text.startswith(("Pulling", "Copying")):  # after the check for room
                fill(models)

        with pytest.raises(ModelError) as caught:
            pull_model("smollm2-135m" if source == "catalogue" else str(smollm2), models,
                       say=fill_once_started)
        assert caught.value.one_line().startswith(
            f"Error: not enough space on {models}: 0 MB free, the model needs 98 MB;"[7:])
        assert [p.name for p in models.iterdir()] == [FILLER]  # no partial model file
