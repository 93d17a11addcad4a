"""How much an image pull will download, asked of the registry before pulling.

Docker's pull stream learns layer sizes only as it goes; users of large stacks want the
total first ("appears to hang" is the top complaint about image pulls). The registry's
manifest has it: the compressed sizes of the config and every layer. Anonymous token auth
(Docker Hub, ghcr.io) is handled; any failure just means the size is unknown.
"""

from __future__ import annotations

import ipaddress
import platform
import re
from dataclasses import dataclass
from typing import Any

import httpx

DOCKER_HUB = "registry-1.docker.io"
MANIFEST_TYPES = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    reference: str  # tag or digest

    @property
    def base_url(self) -> str:
        host = self.registry.split(":")[0]
        # Docker itself talks plain HTTP to registries on loopback.
        insecure = host == "localhost" or _is_loopback(host)
        return f"{'http' if insecure else 'https'}://{self.registry}"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_reference(image: str) -> ImageRef:
    """Split an image reference the way Docker normalises it."""
    name, _, digest = image.partition("@")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, name
    tag = "latest"
    if ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return ImageRef(registry=registry, repository=path, reference=digest or tag)


def _arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


class _Registry:
    def __init__(self, ref: ImageRef, timeout: float):
        self.ref = ref
        self.http = httpx.Client(timeout=timeout, follow_redirects=True)
        self.token: str | None = None

    def get(self, path: str, accept: str) -> httpx.Response:
        url = f"{self.ref.base_url}/v2/{self.ref.repository}/{path}"
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        response = self.http.get(url, headers=headers)
        if response.status_code == 401 and self.token is None:
            self.token = self._anonymous_token(response.headers.get("www-authenticate", ""))
            if self.token:
                return self.get(path, accept)
        return response

    def _anonymous_token(self, challenge: str) -> str | None:
        if not challenge.lower().startswith("bearer "):
            return None
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        if "realm" not in fields:
            return None
        params = {k: v for k, v in fields.items() if k in ("service", "scope")}
        params.setdefault("scope", f"repository:{self.ref.repository}:pull")
        body: dict[str, Any] = self.http.get(fields["realm"], params=params).json()
        token = body.get("token") or body.get("access_token")
        return str(token) if token else None


def download_size(image: str, timeout: float = 5.0) -> int | None:
    """Compressed bytes a pull of ``image`` downloads (for this machine's platform), or
    None when the registry cannot tell us."""
    ref = parse_reference(image)
    registry = _Registry(ref, timeout)
    try:
        response = registry.get(f"manifests/{ref.reference}", MANIFEST_TYPES)
        if response.status_code != 200:
            return None
        manifest: dict[str, Any] = response.json()
        if "manifests" in manifest:  # an index: pick this machine's platform
            wanted = [m for m in manifest["manifests"]
                      if m.get("platform", {}).get("os") == "linux"
                      and m.get("platform", {}).get("architecture") == _arch()]
            if not wanted:
                return None
            response = registry.get(f"manifests/{wanted[0]['digest']}", MANIFEST_TYPES)
            if response.status_code != 200:
                return None
            manifest = response.json()
        layers = manifest.get("layers", [])
        return int(manifest.get("config", {}).get("size", 0)) + sum(
            int(layer.get("size", 0)) for layer in layers)
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    finally:
        registry.http.close()
