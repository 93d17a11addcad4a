"""A real Kubernetes API server for tests: etcd and kube-apiserver on 127.0.0.1, nothing else.

No kubelet, scheduler or controller-manager: objects are validated, defaulted and admitted by
the real server (``kubectl apply --dry-run=server``), never run. A kubelet would also probe
cloud metadata addresses outside this machine. kube-apiserver 1.20.2 is built once from
Debian's source package by scripts/kube-apiserver.sh (cached outside the repository); etcd
and kubectl are Debian packages (scripts/test.sh installs them).
"""

from __future__ import annotations

import os
import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from launcher.ports import pick_free_port
from launcher.processes import ChildProcess, log_tail, start_child, stop_child

PROJECT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 90.0
_NO_PROXY = {"no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}


@dataclass(frozen=True)
class ApiServer:
    url: str
    kubeconfig: Path
    log: Path

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        kubectl = shutil.which("kubectl")
        assert kubectl, "kubectl is missing: scripts/test.sh installs kubernetes-client"
        return subprocess.run([kubectl, "--kubeconfig", str(self.kubeconfig), *args],
                              input=stdin, capture_output=True, text=True, timeout=120,
                              check=False, env={**os.environ, **_NO_PROXY})


def apiserver_binary() -> Path:
    """The cached build (scripts/test.sh makes it before the tests; this builds it if a
    developer runs pytest alone on a new machine)."""
    found = subprocess.run([str(PROJECT / "scripts" / "kube-apiserver.sh")], check=True,
                           capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return Path(found)


def _wait(child: ChildProcess, ready: httpx.Client, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if child.exit_code() is not None:
            raise RuntimeError(f"{child.name} exited:\n{log_tail(child.log_path)}")
        try:
            if ready.get(url, timeout=2).is_success:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} not ready:\n{log_tail(child.log_path)}")
        time.sleep(0.2)


def _environment() -> dict[str, str]:
    # Nothing from the caller's environment is needed, least of all a proxy.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/"),
            **_NO_PROXY}


@contextmanager
def api_server(workdir: Path) -> Iterator[ApiServer]:
    binary = apiserver_binary()
    etcd_binary = shutil.which("etcd") or "/usr/bin/etcd"
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        client_port, peer_port = pick_free_port(), pick_free_port()
        etcd_url = f"http://127.0.0.1:{client_port}"
        etcd = start_child("etcd", [
            etcd_binary, "--name", "test", "--data-dir", str(workdir / "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"test=http://127.0.0.1:{peer_port}",
        ], workdir / "etcd.log", _environment())
        stack.callback(stop_child, etcd)
        with httpx.Client(trust_env=False) as plain:
            _wait(etcd, plain, etcd_url + "/health")

        key = workdir / "service-account.key"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                       capture_output=True)
        token = secrets.token_hex(16)
        tokens = workdir / "tokens.csv"
        tokens.write_text(f"{token},admin,admin,system:masters\n", encoding="utf-8")
        tokens.chmod(0o600)
        port = pick_free_port()
        certs = workdir / "certs"
        server = start_child("kube-apiserver", [
            str(binary), "--etcd-servers", etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(port), "--cert-dir", str(certs),
            "--token-auth-file", str(tokens), "--authorization-mode", "RBAC",
            "--service-cluster-ip-range", "10.0.0.0/24",
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--service-account-key-file", str(key),
            "--service-account-signing-key-file", str(key),
        ], workdir / "kube-apiserver.log", _environment())
        stack.callback(stop_child, server)
        url = f"https://127.0.0.1:{port}"
        # Its own self-signed certificate, written at start; trusted for this test only.
        deadline = time.monotonic() + START_TIMEOUT
        cert = certs / "apiserver.crt"
        while not cert.exists() and time.monotonic() < deadline and server.exit_code() is None:
            time.sleep(0.1)
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert)), trust_env=False,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            _wait(server, client, url + "/readyz")
        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(f"""\
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {{server: "{url}", certificate-authority: "{cert}"}}
users:
- name: admin
  user: {{token: "{token}"}}
contexts:
- name: test
  context: {{cluster: test, user: admin, namespace: default}}
current-context: test
""", encoding="utf-8")
        kubeconfig.chmod(0o600)
        yield ApiServer(url, kubeconfig, workdir / "kube-apiserver.log")
