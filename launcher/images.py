"""Making sure the stack's images are on the engine: use local ones, pull the rest with a
live progress bar per image (bytes and layers), the total download size shown first."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
from docker.utils import parse_repository_tag
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from launcher.checks import require
from launcher.docker_engine import local_root_dir
from launcher.errors import DiskSpaceError, ImageError
from launcher.preflight import images_disk_check
from launcher.progress import Progress as LaunchProgress
from launcher.registry import download_size
from launcher.sizes import human_size


@dataclass
class _Layer:
    current: int = 0
    total: int = 0
    done: bool = False
    reused: bool = False


@dataclass
class PullTracker:
    """Folds Docker's pull events into totals for one image."""

    layers: dict[str, _Layer] = field(default_factory=dict)
    error: str | None = None

    def update(self, event: dict[str, Any]) -> None:
        if "error" in event:
            self.error = str(event.get("errorDetail", {}).get("message") or event["error"])
            return
        layer_id, status = event.get("id"), str(event.get("status", ""))
        if not layer_id or status.startswith(("Pulling from", "Digest", "Status")):
            return
        layer = self.layers.setdefault(layer_id, _Layer())
        detail = event.get("progressDetail") or {}
        if status == "Downloading" and detail.get("total"):
            layer.current, layer.total = int(detail["current"]), int(detail["total"])
        elif status in ("Download complete", "Verifying Checksum"):
            layer.current = layer.total
        elif status in ("Pull complete", "Already exists"):
            layer.current = layer.total
            layer.done = True
            layer.reused = status == "Already exists"

    @property
    def bytes_done(self) -> int:
        return sum(layer.current for layer in self.layers.values())

    @property
    def bytes_total(self) -> int:
        return sum(layer.total for layer in self.layers.values())

    @property
    def layers_done(self) -> int:
        return sum(layer.done for layer in self.layers.values())

    @property
    def layers_reused(self) -> int:
        return sum(layer.reused for layer in self.layers.values())


def is_present(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def images_to_pull(present: dict[str, bool], policy: str) -> list[str]:
    """Which images a launch must pull under ``--pull missing|always|never``."""
    missing = [image for image, here in present.items() if not here]
    if policy == "never" and missing:
        raise ImageError(
            f"image {missing[0]} is not on this machine and --pull never forbids pulling it",
            hint="pull it yourself, or launch with --pull missing",
        )
    if policy == "always":
        return list(present)
    return missing


def _pull_one(client: docker.DockerClient, image: str,
              on_event: Callable[[PullTracker], None]) -> PullTracker:
    repository, tag = parse_repository_tag(image)
    tracker = PullTracker()
    try:
        events: Iterable[dict[str, Any]] = client.api.pull(
            repository, tag=tag or "latest", stream=True, decode=True)
        for event in events:
            tracker.update(event)
            on_event(tracker)
    except docker.errors.APIError as error:  # NotFound too: told apart by its words below
        tracker.error = str(error.explanation or error)
    if tracker.error:
        not_found = any(word in tracker.error.lower()
                        for word in ("not found", "manifest unknown", "does not exist"))
        if not_found:
            raise ImageError(f"image {image} was not found in its registry ({tracker.error})",
                             hint="check the name and tag, or set it under [images] in "
                                  "config.toml")
        raise ImageError(f"cannot pull {image}: {tracker.error}",
                         hint="check the network, the registry's name, or `docker login`")
    return tracker


def ensure_images(client: docker.DockerClient, images: list[str], policy: str,
                  progress: LaunchProgress) -> None:
    present = {image: is_present(client, image) for image in dict.fromkeys(images)}
    pulls = images_to_pull(present, policy)
    if not pulls:
        return
    sizes = {image: download_size(image) for image in pulls}
    known = [size for size in sizes.values() if size is not None]
    total = human_size(sum(known)) if known else "size unknown"
    if len(known) < len(sizes) and known:
        total += " and more"
    root = local_root_dir(client)
    if root is not None:
        require(images_disk_check(root, sizes), DiskSpaceError)
    # Layers already on this machine are not downloaded again, hence "up to".
    progress.note(f"Pulling {len(pulls)} image(s), up to {total} to download: " +
                  ", ".join(f"{image} ({human_size(sizes[image])})" for image in pulls))

    if not progress.interactive:
        for image in pulls:
            started = time.monotonic()
            tracker = _pull_one(client, image, lambda tracker: None)
            fresh = len(tracker.layers) - tracker.layers_reused
            progress.note(f"pulled {image}: {human_size(tracker.bytes_total)} downloaded in "
                          f"{fresh} new layer(s), {tracker.layers_reused} already here, "
                          f"{time.monotonic() - started:.1f} s")
        return

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TextColumn("{task.fields[layers]}"), TimeElapsedColumn())
    with Progress(*columns, console=progress.console, transient=False) as bars:
        for image in pulls:
            task = bars.add_task(image, total=sizes[image], layers="")

            def show(tracker: PullTracker, task: Any = task, image: str = image) -> None:
                # The registry's size counts layers already here, which are not
                # downloaded; once layers download, their own sizes are the better total.
                bars.update(task, completed=tracker.bytes_done,
                            total=tracker.bytes_total or sizes[image],
                            layers=f"layers {tracker.layers_done}/{len(tracker.layers)}")

            done = _pull_one(client, image, show)
            if done.bytes_total:
                show(done)
                bars.update(task, completed=done.bytes_total, total=done.bytes_total)
            else:  # every layer was here already
                bars.update(task, completed=1, total=1, layers="up to date")
