"""The Host/Origin guard every RAG listener wears (DNS rebinding): which names pass."""

from __future__ import annotations

import pytest

from opea.host_guard import host_name, origin_allowed


@pytest.mark.parametrize(("header", "name"), [
    ("127.0.0.1:6006", "127.0.0.1"), ("LOCALHOST:80", "localhost"), ("localhost", "localhost"),
    ("[::1]:7000", "::1"), ("[::1]", "::1"), ("evil.example:6006", "evil.example"),
    ("127.0.0.1.nip.io:6006", "127.0.0.1.nip.io"), ("", ""),
])
def test_host_names(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(("origin", "allowed"), [
    ("http://127.0.0.1:8501", True), ("http://localhost:8501", True), ("http://[::1]:8501", True),
    ("http://evil.example:6006", False), ("null", False), ("file://", False),
    ("http://127.0.0.1.evil.example", False), ("ftp://127.0.0.1", False),
])
def test_origins(origin: str, allowed: bool) -> None:
    assert origin_allowed(origin) is allowed
