"""`doctor --gpu-smoke`: the one test that proves Docker can give a container the GPU.

NVML and `docker info` say a GPU and the NVIDIA runtime are there; only a container that
asks for the GPU and runs `nvidia-smi` in it shows they work together (driver, toolkit,
runtime configuration, CDI). The container is labelled like every container opea-chat
starts and removed whatever happens, also when Docker refused to start it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from launcher.checks import TOOLKIT_HINT, Check, failed, passed
from launcher.docker_engine import gpu_request_refused

if TYPE_CHECKING:
    import docker

SMOKE_TIMEOUT = 120
NVIDIA_SMI = ["nvidia-smi", "--query-gpu=index,name,memory.total,driver_version",
              "--format=csv,noheader"]


def gpu_smoke(client: docker.DockerClient, image: str, gpu_count: int,
              labels: dict[str, str], timeout: float = SMOKE_TIMEOUT) -> Check:
    """Run `nvidia-smi` in ``image`` with ``gpu_count`` GPUs (-1: all)."""
    import docker.errors
    import requests.exceptions
    from docker.types import DeviceRequest

    name = "gpu smoke"
    container = None
    try:
        container = client.containers.create(
            image, entrypoint=NVIDIA_SMI[:1], command=NVIDIA_SMI[1:], labels=labels,
            # "utility" is what mounts nvidia-smi into the container.
            device_requests=[DeviceRequest(count=gpu_count,
                                           capabilities=[["gpu", "utility", "compute"]])],
            network_disabled=True, detach=True)
        container.start()
        status = container.wait(timeout=timeout)
        output = container.logs().decode("utf-8", errors="replace").strip()
    except docker.errors.APIError as error:
        reason = str(error.explanation or error)
        if gpu_request_refused(error):
            return failed(name, f"Docker refused a container's GPU request ({reason}): the "
                                "NVIDIA Container Toolkit is missing or not configured",
                          TOOLKIT_HINT)
        return failed(name, f"the GPU test container in {image} failed: {reason}",
                      "see `docker info` and the NVIDIA Container Toolkit's set-up guide")
    except (requests.exceptions.RequestException, OSError) as error:
        return failed(name, f"the GPU test container in {image} did not finish within "
                            f"{timeout:g} s ({error})",
                      "check `nvidia-smi` on the host: a hung driver hangs containers too")
    finally:
        if container is not None:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
    lines = " | ".join(line.strip() for line in output.splitlines() if line.strip())
    if status.get("StatusCode") != 0:
        return failed(name, f"nvidia-smi in a GPU container of {image} exited with code "
                            f"{status.get('StatusCode')}: {lines[-300:] or 'no output'}",
                      TOOLKIT_HINT)
    return passed(name, f"a container of {image} with a GPU request runs nvidia-smi: {lines}")
