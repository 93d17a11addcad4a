"""The remote runtime: only the chat app runs here, pointed at a ChatQnA megaservice that
runs elsewhere (a cluster: `export kubernetes`, OPEA's Helm chart, GMC).

It starts the app as a local process, like the local runtime does, with the endpoint's
address, CA bundle and token in the app's environment (never on its command line). Before
the app starts, ``prepare`` checks the endpoint (``launcher.remote.check_endpoint``): a
launch against an endpoint that cannot answer fails with one line, before Ready. Stopping
stops only the app: the endpoint is not ours.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from launcher.local_runtime import LocalRuntime, child_environment, service_command
from launcher.plan import PlannedService, StackPlan
from launcher.processes import start_child
from launcher.progress import Progress
from launcher.remote import HEALTH_PATH, Endpoint, check_endpoint
from models.store import LocalModel
from opea.stack import MEGASERVICE_URL_VARIABLE

STATUS_TIMEOUT = 5.0


def remote_model(url: str) -> LocalModel:
    """The model is the endpoint's own; nothing of it is on this machine."""
    return LocalModel(f"served by {url}", Path(), 0)


class RemoteRuntime(LocalRuntime):
    name = "remote"

    def __init__(self, log_dir: Path, endpoint: Endpoint):
        super().__init__(log_dir)
        self.endpoint = endpoint

    def prepare(self, plan: StackPlan, progress: Progress) -> None:
        progress.note(f"Checking the endpoint {self.endpoint.url} ...")
        health = check_endpoint(self.endpoint)
        trust = (f"certificate verified with {self.endpoint.ca_bundle}"
                 if self.endpoint.ca_bundle else "certificate verified")
        progress.note(f"Endpoint {self.endpoint.url}: healthy in {health.health_seconds:.1f} s, "
                      f"answered a one-token test in {health.answer_seconds:.1f} s"
                      f"{f' ({trust})' if health.tls else ''}"
                      f"{', with a bearer token' if self.endpoint.token else ''}")

    def start(self, service: PlannedService, plan: StackPlan) -> None:
        env = child_environment()
        env[MEGASERVICE_URL_VARIABLE] = self.endpoint.url
        env.update(self.endpoint.app_environment())
        self._children[service.name] = start_child(
            service.name, service_command(service, plan), self.log_dir / f"{service.name}.log",
            env)

    def device(self) -> str:
        return f"the endpoint's ({self.endpoint.url})"

    def elsewhere(self) -> dict[str, str]:
        return {"megaservice": self.endpoint.url}

    def elsewhere_healthy(self, service: str) -> bool:
        try:
            with self.endpoint.client(STATUS_TIMEOUT) as client:
                return client.get(HEALTH_PATH).is_success
        except httpx.HTTPError:
            return False
