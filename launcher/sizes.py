"""Byte counts as people read them: '98.4 MB', '2.5 GB' (decimal units, as registries,
Docker and model hubs show them)."""

from __future__ import annotations


def human_size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size} B"
