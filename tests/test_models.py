"""Finding, checking and pulling models."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from models.catalogue import CATALOGUE
from models.errors import ModelError
from models.gguf import read_header
from models.pull import pull_model
from models.store import ModelNotPulledError, list_models, resolve_model


def test_pulled_smollm2_is_the_catalogued_file_and_reads_as_gguf(smollm2: Path) -> None:
    entry = CATALOGUE["smollm2-135m"]
    assert smollm2.name == entry.file_name
    assert smollm2.stat().st_size == entry.size_bytes
    header = read_header(smollm2)
    assert header.version == 3 and header.tensor_count == 272
    assert not list(smollm2.parent.glob("*.part"))


def test_a_second_pull_finds_the_file_and_downloads_nothing(smollm2: Path) -> None:
    said: list[str] = []
    model = pull_model("smollm2-135m", smollm2.parent, say=said.append)
    assert model.path == smollm2
    assert said == [f"smollm2-135m is already in {smollm2.parent}"]


def test_resolve_by_catalogue_name_by_file_stem_and_by_path(home_with_model: Path) -> None:
    models_dir = home_with_model / "models"
    by_name = resolve_model("smollm2-135m", models_dir)
    assert by_name.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert resolve_model("SMOLLM2-135M", models_dir).path == by_name.path
    by_path = resolve_model(str(by_name.path), models_dir)
    assert by_path.path == by_name.path.resolve()
    assert [m.name for m in list_models(models_dir)] == ["smollm2-135m"]


def test_catalogue_model_not_pulled_yet_says_how_to_pull(tmp_path: Path) -> None:
    with pytest.raises(ModelNotPulledError, match="opea-chat models pull smollm2-135m"):
        resolve_model("smollm2-135m", tmp_path)


def test_unknown_name_lists_the_models_found(home_with_model: Path) -> None:
    with pytest.raises(ModelError) as caught:
        resolve_model("llama-70b", home_with_model / "models")
    assert caught.value.one_line() == (
        "unknown model 'llama-70b'; models found: smollm2-135m; or give the path of a .gguf file"
    )


def test_a_file_that_is_not_gguf_is_rejected(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 this is a zip, not a model" * 4)
    with pytest.raises(ModelError, match="is not a GGUF model"):
        resolve_model(str(fake), tmp_path)


def test_unsupported_gguf_version_and_missing_path(tmp_path: Path) -> None:
    old = tmp_path / "old.gguf"
    old.write_bytes(struct.pack("<4sIQQ", b"GGUF", 1, 0, 0))
    with pytest.raises(ModelError, match="GGUF version 1"):
        resolve_model(str(old), tmp_path)
    with pytest.raises(ModelError, match="no model file at"):
        resolve_model(str(tmp_path / "missing.gguf"), tmp_path)


def test_pulling_an_unknown_name_names_what_can_be_pulled(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="models that can be pulled: smollm2-135m, "
                                         "hf:OWNER/REPO"):
        pull_model("gpt-5", tmp_path)
    assert not list(tmp_path.iterdir())
