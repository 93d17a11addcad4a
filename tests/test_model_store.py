"""`opea-chat models list|pull|rm` as a user runs them: local sources checked before they are
copied or linked, removal of exactly one model, and nothing half-made left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
import pytest

from launcher.cli import main
from launcher.session_file import write_session
from launcher.settings import Settings
from launcher.sizes import human_size
from models.gguf import read_header
from models.memory import estimate
from models.store import list_models, unfinished_pulls
from tests.model_files import hf_folder, truncated_copy
from tests.session_records import session_record


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_shows_format_size_memory_need_and_what_is_broken(
        home_with_model: Path, smollm2: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    models = home_with_model / "models"
    hf_folder(models / "tiny-llama")
    truncated_copy(smollm2, models / "cut.gguf", 3_000_000)
    code, out, _ = run_cli(capsys, "models", "list", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    # The catalogue's embedding model (rag), not pulled, is listed too.
    assert sorted(rows) == ["all-minilm-l6-v2", "cut", "smollm2-135m", "tiny-llama"]
    assert rows["all-minilm-l6-v2"]["pulled"] is False
    smol = rows["smollm2-135m"]
    assert (smol["format"], smol["size_bytes"], smol["problem"]) == ("gguf", 98_362_432, None)
    # The estimate launch and doctor make for the default context (test_memory.py holds it
    # against the real server's memory).
    need = estimate(read_header(smollm2).shape(), Settings().context_size, "llama.cpp").total
    assert smol["memory_bytes"] == need
    assert rows["tiny-llama"]["format"] == "hf" and rows["tiny-llama"]["memory_bytes"] > 0
    assert rows["cut"]["memory_bytes"] is None
    assert "is truncated" in rows["cut"]["problem"] and "pull or copy" in rows["cut"]["problem"]

    code, out, _ = run_cli(capsys, "models", "list")
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "gguf" in lines["smollm2-135m"] and f"needs ~{human_size(need)}" in lines["smollm2-135m"]
    assert "broken: " in lines["cut"]


def test_pull_a_local_gguf_checks_then_copies_it(
        home: Path, smollm2: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "models", "pull", str(smollm2))
    assert (code, err) == (0, "")
    copied = home / "models" / smollm2.name
    assert copied.is_file() and not copied.is_symlink()
    assert copied.stat().st_size == smollm2.stat().st_size
    assert out.splitlines()[-1] == f"smollm2-135m saved to {copied}"
    assert unfinished_pulls(home / "models") == []

    code, _, err = run_cli(capsys, "models", "pull", str(smollm2))
    assert code == 1
    assert err == (f"Error: a model named smollm2-135m is already in {home / 'models'}; remove "
                   "it first with `opea-chat models rm smollm2-135m`, or rename the source\n")


def test_pull_link_then_rm_removes_the_link_not_the_model(
        home: Path, smollm2: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_cli(capsys, "models", "pull", "--link", str(smollm2))
    link = home / "models" / smollm2.name
    assert code == 0 and link.is_symlink() and link.resolve() == smollm2.resolve()
    code, out, _ = run_cli(capsys, "models", "rm", "smollm2-135m")
    assert code == 0
    assert out == f"Removed smollm2-135m ({link}, 98.4 MB)\n"
    assert not link.exists() and not link.is_symlink()
    assert smollm2.stat().st_size == 98_362_432  # the linked model itself is untouched


def test_a_corrupt_local_file_is_refused_and_nothing_is_added(
        home: Path, smollm2: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = truncated_copy(smollm2, tmp_path / "cut.gguf", 5_000_000)
    code, _, err = run_cli(capsys, "models", "pull", str(cut))
    assert code == 1
    assert err.startswith(f"Error: {cut} is truncated: tensor ")
    assert err.endswith("; the download or copy was cut short; pull or copy the model again\n")
    assert not (home / "models").exists() or list((home / "models").iterdir()) == []


def test_pull_a_hugging_face_folder_and_refuse_a_broken_one(
        home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    made = hf_folder(tmp_path / "tiny-llama")
    code, _, err = run_cli(capsys, "models", "pull", str(made.path))
    assert (code, err) == (0, "")
    [model] = list_models(home / "models")
    assert (model.name, model.format) == ("tiny-llama", "hf")
    assert sorted(p.name for p in model.path.iterdir()) == sorted(
        p.name for p in made.path.iterdir())

    broken = hf_folder(tmp_path / "broken" / "tiny-llama")
    (broken.path / broken.shards[0]).unlink()
    run_cli(capsys, "models", "rm", "tiny-llama")
    code, _, err = run_cli(capsys, "models", "pull", str(broken.path))
    assert code == 1
    assert f"weight shard {broken.shards[0]} listed in model.safetensors.index.json is " \
           "missing" in err
    assert list_models(home / "models") == [] and unfinished_pulls(home / "models") == []


def test_rm_of_an_unknown_name_lists_the_models(
        home_with_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "models", "rm", "llama-70b")
    assert code == 1
    assert err == (f"Error: no model named 'llama-70b' in {home_with_model / 'models'}; models "
                   "there: smollm2-135m (see `opea-chat models list`)\n")


def test_rm_refuses_the_model_the_running_session_serves(
        home_with_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = home_with_model / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    # This test's own process stands in for the running launcher: alive, with its start time.
    me = psutil.Process()
    write_session(home_with_model / "state" / "session.json", session_record(
        launcher_pid=me.pid, launcher_create_time=me.create_time(), model_path=str(model)))
    code, _, err = run_cli(capsys, "models", "rm", "smollm2-135m")
    assert code == 1
    assert err == ("Error: model smollm2-135m is in use by the running opea-chat; stop it "
                   "first with `opea-chat stop`\n")
    assert model.exists()

    # Once that launcher is gone (a PID that is not running), the model can go.
    write_session(home_with_model / "state" / "session.json", session_record(
        launcher_pid=os.getpid(), launcher_create_time=me.create_time() - 1000,
        model_path=str(model)))
    code, _, _ = run_cli(capsys, "models", "rm", "smollm2-135m")
    assert code == 0 and not model.exists() and not model.is_symlink()


@pytest.mark.parametrize("source,message", [
    ("hf:", "'hf:' is not a Hugging Face model reference; write hf:OWNER/REPO, or "
            "hf:OWNER/REPO:FILE.gguf for one file"),
    ("hf:owner/repo:", "'hf:owner/repo:' names no file after the colon; write "
                       "hf:OWNER/REPO:FILE.gguf, or hf:OWNER/REPO for a folder"),
    ("hf:../../etc", "'hf:../../etc' is not a Hugging Face model reference; write "
                     "hf:OWNER/REPO, or hf:OWNER/REPO:FILE.gguf for one file"),
    ("hf:owner/repo:../../x.gguf", "'hf:owner/repo:../../x.gguf' is not a Hugging Face model "
                                   "reference; write hf:OWNER/REPO, or hf:OWNER/REPO:FILE.gguf "
                                   "for one file"),
])
def test_bad_hub_references_get_one_clear_line(
        home: Path, capsys: pytest.CaptureFixture[str], source: str, message: str) -> None:
    code, _, err = run_cli(capsys, "models", "pull", source)
    assert (code, err) == (1, f"Error: {message}\n")
    assert not (home / "models").exists()
