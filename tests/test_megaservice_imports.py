"""The megaservice runs inside OPEA's chatqna image (our package mounted read-only), where
only the standard library, comps and what comps itself uses are installed: it may import
nothing else, and none of opea-chat's other packages."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import opea

# What the chatqna image has besides the standard library (comps and its own imports).
IN_THE_IMAGE = {"comps", "fastapi", "pydantic", "starlette", "aiohttp", "anyio", "httpx",
                "requests", "opea"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_the_megaservice_imports_only_what_the_chatqna_image_has() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, opea.megaservice; "
         "print(' '.join(m for m in sys.modules "
         "if m.split('.')[0] in ('opea', 'launcher', 'app', 'rag', 'models')))"],
        capture_output=True, text=True, check=True).stdout.split()
    assert [name for name in loaded if not name.startswith("opea")] == []
    ours = {name for name in loaded if name.count(".") == 1}
    assert ours == {"opea.megaservice", "opea.sources", "opea.stack", "opea.wire"}
    package = Path(opea.__file__).parent
    for module in ours:
        foreign = _imports(package / f"{module.split('.')[1]}.py") - IN_THE_IMAGE \
            - set(sys.stdlib_module_names)
        assert foreign == set(), module
