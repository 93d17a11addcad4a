"""Image references, pull policies and pull progress, as Docker reports them."""

from __future__ import annotations

from typing import Any

import pytest

from launcher.errors import ImageError
from launcher.images import PullTracker, images_to_pull
from launcher.registry import ImageRef, parse_reference
from launcher.sizes import human_size


@pytest.mark.parametrize("image,expected", [
    ("redis/redis-stack:7.2.0-v9",
     ImageRef("registry-1.docker.io", "redis/redis-stack", "7.2.0-v9")),
    ("busybox", ImageRef("registry-1.docker.io", "library/busybox", "latest")),
    ("ghcr.io/huggingface/text-generation-inference:2.4.1",
     ImageRef("ghcr.io", "huggingface/text-generation-inference", "2.4.1")),
    ("127.0.0.1:5000/opea/chatqna", ImageRef("127.0.0.1:5000", "opea/chatqna", "latest")),
    ("localhost/app@sha256:abc", ImageRef("localhost", "app", "sha256:abc")),
])
def test_references_are_normalised_like_docker_does(image: str, expected: ImageRef) -> None:
    assert parse_reference(image) == expected


def test_loopback_registries_are_plain_http() -> None:
    assert parse_reference("127.0.0.1:5000/a/b").base_url == "http://127.0.0.1:5000"
    assert parse_reference("ghcr.io/a/b").base_url == "https://ghcr.io"


def test_pull_policies() -> None:
    present = {"a:1": True, "b:1": False}
    assert images_to_pull(present, "missing") == ["b:1"]
    assert images_to_pull(present, "always") == ["a:1", "b:1"]
    assert images_to_pull({"a:1": True}, "never") == []
    with pytest.raises(ImageError, match="image b:1 is not on this machine and --pull never"):
        images_to_pull(present, "never")


def test_pull_events_fold_into_bytes_and_layers() -> None:
    tracker = PullTracker()
    events: list[dict[str, Any]] = [
        {"status": "Pulling from opea/chatqna", "id": "latest"},
        {"status": "Already exists", "id": "aaa"},
        {"status": "Pulling fs layer", "id": "bbb"},
        {"status": "Pulling fs layer", "id": "ccc"},
        {"status": "Downloading", "progressDetail": {"current": 100, "total": 400}, "id": "bbb"},
        {"status": "Downloading", "progressDetail": {"current": 50, "total": 200}, "id": "ccc"},
        {"status": "Download complete", "id": "bbb"},
        {"status": "Extracting", "progressDetail": {"current": 10, "total": 400}, "id": "bbb"},
        {"status": "Pull complete", "id": "bbb"},
        {"status": "Digest: sha256:0123"},
    ]
    for event in events:
        tracker.update(event)
    assert (tracker.bytes_done, tracker.bytes_total) == (450, 600)
    assert (tracker.layers_done, len(tracker.layers), tracker.layers_reused) == (2, 3, 1)
    tracker.update({"error": "unauthorized", "errorDetail": {"message": "authentication required"}})
    assert tracker.error == "authentication required"


def test_sizes_read_like_a_person_would_write_them() -> None:
    assert [human_size(n) for n in (None, 12, 300_400, 98_362_432, 2_500_000_000)] == [
        "size unknown", "12 B", "300.4 kB", "98.4 MB", "2.5 GB"]
