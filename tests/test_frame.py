"""The fixed script and style the page adds to Streamlit's frame: valid JavaScript (checked by
Node), and nothing that the page's HTML sanitizer would drop (it removes a script whose text
contains markup, silently)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from app.frame import STYLE, WATCH_SCRIPT


def script_text() -> str:
    return WATCH_SCRIPT.split("<script>", 1)[1].rsplit("</script>", 1)[0]


def test_the_script_holds_no_markup_the_sanitizer_would_drop() -> None:
    assert re.search(r"<[/\w!]", script_text()) is None


@pytest.mark.skipif(shutil.which("node") is None, reason="scripts/test.sh installs Node")
def test_the_script_is_valid_javascript(tmp_path: Path) -> None:
    script = tmp_path / "frame.js"
    script.write_text(script_text())
    checked = subprocess.run(["node", "--check", str(script)], capture_output=True, text=True,
                             check=False)
    assert checked.returncode == 0, checked.stderr


def test_the_style_is_only_a_style_element() -> None:
    assert STYLE.strip().startswith("<style>") and STYLE.strip().endswith("</style>")
    assert STYLE.count("<") == 2
