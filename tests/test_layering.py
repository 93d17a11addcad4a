"""The layering rules in pyproject.toml hold, and each one fails when it is broken.

Each test runs the real ``lint-imports`` on a copy of the project's packages in which one
module gained one forbidden import, and checks that the right contract reports it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
LAYERS = "layers: app > launcher > rag > models > opea"
MEGASERVICE = "opea.megaservice imports only what OPEA's opea/chatqna image has"


def copy_project(target: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("opea", "models", "rag", "launcher", "app"):
        shutil.copytree(ROOT / package, target / package, ignore=ignore)
    (target / "tests").mkdir()
    for name in ("__init__.py", "import_contracts.py"):
        shutil.copy(ROOT / "tests" / name, target / "tests" / name)


def lint_imports(project: Path) -> tuple[int, str]:
    # lint-imports puts its working directory first on sys.path: it reads the copy.
    done = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=project, capture_output=True,
                          text=True, timeout=120, check=False)
    return done.returncode, re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)


def test_the_project_keeps_every_contract(tmp_path: Path) -> None:
    copy_project(tmp_path)
    code, out = lint_imports(tmp_path)
    assert code == 0, out
    assert f"{LAYERS} KEPT" in out
    assert f"{MEGASERVICE} KEPT" in out


@pytest.mark.parametrize(("module", "line", "broken", "reported"), [
    # opea is at the bottom: neither the launcher nor the app (nor models).
    ("opea/stack.py", "import launcher.paths", LAYERS, "opea.stack -> launcher.paths"),
    ("opea/client.py", "from app import errors", LAYERS, "opea.client -> app.errors"),
    ("opea/errors.py", "import models.errors", LAYERS, "opea.errors -> models.errors"),
    # models does not import the launcher.
    ("models/store.py", "from launcher import errors", LAYERS, "models.store -> launcher.errors"),
    # The RAG services use models and opea, never the launcher.
    ("rag/store.py", "import launcher.paths", LAYERS, "rag.store -> launcher.paths"),
    # The launcher does not import the app.
    ("launcher/local_runtime.py", "import app.main", LAYERS, "launcher.local_runtime -> app.main"),
    # The megaservice, and what it imports of opea, use only what OPEA's image has.
    ("opea/megaservice.py", "import streamlit", MEGASERVICE, "opea.megaservice -> streamlit"),
    ("opea/wire.py", "import psutil", MEGASERVICE, "opea.wire -> psutil"),
    ("opea/megaservice.py", "import models.memory", MEGASERVICE,
     "opea.megaservice -> models.memory"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, line: str,
                                                broken: str, reported: str) -> None:
    copy_project(tmp_path)
    path = tmp_path / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    code, out = lint_imports(tmp_path)
    assert code == 1, out
    assert f"{broken} BROKEN" in out
    assert reported in out
