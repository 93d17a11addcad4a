"""The remote runtime: only the chat app runs here, pointed at a ChatQnA megaservice that
runs elsewhere (a cluster: `export kubernetes`, OPEA's Helm chart, GMC).

It starts the app as a local process (the PROCESS runner, as the local runtime does),
with the endpoint's address, CA bundle and token in the app's environment (never on its
command line). Before
the app starts, ``prepare`` checks the endpoint (``launcher.remote.check_endpoint``): a
launch against an endpoint that cannot answer fails with one line, before Ready. Stopping
stops only the app: the endpoint is not ours.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from launcher.plan import Placement, StackPlan
from launcher.process_runner import ProcessRunner
from launcher.progress import Progress
from launcher.remote import HEALTH_PATH, Endpoint, check_endpoint
from launcher.runner import Runners
from models.store import LocalModel
from opea.stack import MEGASERVICE_URL_VARIABLE

STATUS_TIMEOUT = 5.0


def remote_model(url: str) -> LocalModel:
    """The model is the endpoint's own; nothing of it is on this machine."""
    return LocalModel(f"served by {url}", Path(), 0)


class RemoteRuntime(Runners):
    """The app is its only service, a process; the megaservice is elsewhere (the endpoint)."""

    name = "remote"

    def __init__(self, log_dir: Path, endpoint: Endpoint):
        self.log_dir = log_dir
        self.endpoint = endpoint
        super().__init__({Placement.PROCESS: ProcessRunner(
            log_dir, app_environment=lambda plan: self._app_environment())})

    def _app_environment(self) -> dict[str, str]:
        return {MEGASERVICE_URL_VARIABLE: self.endpoint.url, **self.endpoint.app_environment()}

    def prepare(self, plan: StackPlan, progress: Progress) -> None:
        progress.note(f"Checking the endpoint {self.endpoint.url} ...")
        health = check_endpoint(self.endpoint)
        trust = (f"certificate verified with {self.endpoint.ca_bundle}"
                 if self.endpoint.ca_bundle else "certificate verified")
        progress.note(f"Endpoint {self.endpoint.url}: healthy in {health.health_seconds:.1f} s, "
                      f"answered a one-token test in {health.answer_seconds:.1f} s"
                      f"{f' ({trust})' if health.tls else ''}"
                      f"{', with a bearer token' if self.endpoint.token else ''}")

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
