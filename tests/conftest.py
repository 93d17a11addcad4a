"""Shared fixtures: an isolated OPEA_CHAT_HOME per test, and the real SmolLM2 model pulled
once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from launcher.paths import HOME_VARIABLE
from models.pull import pull_model

pytest_plugins = ["tests.docker_fixtures"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh OPEA_CHAT_HOME; no OPEA_CHAT_* setting leaks in from the machine."""
    for name in list(os.environ):
        if name.startswith("OPEA_CHAT_"):
            monkeypatch.delenv(name)
    root = tmp_path / "home"
    monkeypatch.setenv(HOME_VARIABLE, str(root))
    return root


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real SmolLM2-135M GGUF, pulled through the product's own pull path."""
    models_dir = tmp_path_factory.mktemp("pulled-models")
    return pull_model("smollm2-135m", models_dir, say=lambda text: None).path


@pytest.fixture
def home_with_model(home: Path, smollm2: Path) -> Path:
    models = home / "models"
    home.mkdir(mode=0o700)  # private, as opea-chat makes its folders (doctor checks)
    models.mkdir(mode=0o700)
    (models / smollm2.name).symlink_to(smollm2)
    return home


@pytest.fixture(scope="session")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real all-MiniLM-L6-v2 embedding model folder, pulled through the product's own
    pull path."""
    from models.embedding import pull_embedding_model

    models_dir = tmp_path_factory.mktemp("pulled-embedding")
    return pull_embedding_model("all-minilm-l6-v2", models_dir, say=lambda text: None).path
