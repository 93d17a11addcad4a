"""The remote runtime's endpoint: an existing ChatQnA megaservice (on a cluster, say), checked
before the app is pointed at it.

An endpoint is a base URL, an optional CA bundle to verify its certificate with (the system's
trust store otherwise; verification is never switched off), and an optional bearer token taken
from the environment (``OPEA_CHAT_ENDPOINT_TOKEN``) or a file (the ``endpoint_token_file``
setting). The token is never printed, logged or put on a command line: ``Endpoint`` keeps it
out of its repr, and the app gets it through its environment.

Every way a check can fail becomes one ``RemoteEndpointError`` line saying what is wrong and
what to do: a name that does not resolve, a refused connection, a certificate that is not
trusted or not for this host, a token refused (401/403), a path that is not ChatQnA's (404),
no answer in time, an answer cut off.
"""

from __future__ import annotations

import errno
import socket
import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from launcher.checks import Check, failed, passed
from launcher.errors import ConfigError, RemoteEndpointError
from launcher.settings import Settings
from opea.stack import CHATQNA_PATH

TOKEN_VARIABLE = "OPEA_CHAT_ENDPOINT_TOKEN"  # noqa: S105 (the name of a variable)
CA_BUNDLE_VARIABLE = "OPEA_CHAT_CA_BUNDLE"
HEALTH_PATH = "/v1/health_check"
# A one-token answer; a cold LLM on a busy node can take a while for its first request.
CHECK_TIMEOUT = 30.0
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Endpoint:
    url: str
    ca_bundle: str | None = None
    token: str | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """host:port, as a user would name it."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.hostname}:{port}"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    def ssl_context(self) -> ssl.SSLContext:
        # Verification always on: the system's trust store, or the CA bundle given.
        return ssl.create_default_context(cafile=self.ca_bundle)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self, timeout: float = CHECK_TIMEOUT) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), headers=self.headers(),
                            timeout=httpx.Timeout(timeout), trust_env=False)

    def app_environment(self) -> dict[str, str]:
        """What the app needs to reach the endpoint the same way (its environment, never its
        command line)."""
        env = {}
        if self.token:
            env[TOKEN_VARIABLE] = self.token
        if self.ca_bundle:
            env[CA_BUNDLE_VARIABLE] = self.ca_bundle
        return env


def _read_token(settings: Settings, environ: Mapping[str, str]) -> str | None:
    if environ.get(TOKEN_VARIABLE):
        return environ[TOKEN_VARIABLE].strip()
    if not settings.endpoint_token_file:
        return None
    path = Path(settings.endpoint_token_file).expanduser()
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not text"
        raise ConfigError(f"cannot read the endpoint token file {path}: {reason}",
                          hint="fix endpoint_token_file, or set OPEA_CHAT_ENDPOINT_TOKEN") \
            from error
    if not token:
        raise ConfigError(f"the endpoint token file {path} is empty",
                          hint="write the token into it, or unset endpoint_token_file")
    return token


def endpoint_from_settings(settings: Settings, environ: Mapping[str, str]) -> Endpoint:
    url = settings.endpoint.strip().rstrip("/")
    if not url:
        raise ConfigError("the remote runtime needs the megaservice's address",
                          hint="pass --endpoint URL (or set OPEA_CHAT_ENDPOINT)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"endpoint {url!r} is not an http:// or https:// URL",
                          hint="e.g. --endpoint https://chat.example.com or "
                               "http://127.0.0.1:8888 (a kubectl port-forward)")
    if parts.path not in ("", "/"):
        raise ConfigError(f"endpoint {url!r} has a path ({parts.path})",
                          hint=f"give the megaservice's base URL, without {CHATQNA_PATH}")
    ca_bundle = settings.ca_bundle.strip() or None
    if ca_bundle:
        ca_path = Path(ca_bundle).expanduser()
        if not ca_path.is_file():
            raise ConfigError(f"the CA bundle {ca_path} ({settings.source_of('ca_bundle')}) "
                              "is not a file", hint="set ca_bundle to a PEM file of CA "
                                                    "certificates")
        ca_bundle = str(ca_path)
    token = _read_token(settings, environ)
    if token and parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise ConfigError(f"endpoint {url} is plain http: the token would cross the network "
                          "unencrypted", hint="use https://, or a kubectl port-forward to "
                                              "127.0.0.1")
    return Endpoint(url, ca_bundle, token)


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _certificate_of(endpoint: Endpoint) -> str:
    """Whose certificate the server showed, for the error message only (nothing is sent)."""
    try:
        from cryptography import x509

        parts = urlsplit(endpoint.url)
        pem = ssl.get_server_certificate((parts.hostname or "", parts.port or 443), timeout=5)
        cert = x509.load_pem_x509_certificate(pem.encode())
        names: list[str] = []
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = [str(n) for n in san.get_values_for_type(x509.DNSName)] + \
                [str(n) for n in san.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            pass
        return (f"certificate {cert.subject.rfc4514_string()}"
                f"{' for ' + ', '.join(names) if names else ''}, issued by "
                f"{cert.issuer.rfc4514_string()}")
    except Exception:  # the description is a courtesy; the error stands without it
        return "its certificate"


def describe_failure(error: Exception, endpoint: Endpoint, timeout: float) -> RemoteEndpointError:
    """One line for a failed request to the endpoint."""
    where = endpoint.address
    for cause in _causes(error):
        if isinstance(cause, socket.gaierror):
            return RemoteEndpointError(
                f"the endpoint's host name {endpoint.host} does not resolve",
                hint="check the --endpoint address (a typo? a VPN that is not up?)")
        if isinstance(cause, ssl.SSLCertVerificationError):
            why = cause.verify_message or cause.reason or str(cause)
            if "hostname mismatch" in why.lower() or "ip address mismatch" in why.lower():
                return RemoteEndpointError(
                    f"TLS: {where} showed {_certificate_of(endpoint)}, which is not valid "
                    f"for the host {endpoint.host}",
                    hint="use the host name the certificate was made for in --endpoint")
            return RemoteEndpointError(
                f"TLS: {where} showed {_certificate_of(endpoint)}, which is not trusted "
                f"({why})", hint="set ca_bundle (or OPEA_CHAT_CA_BUNDLE) to the PEM file of "
                                 "the CA that signed it")
        if isinstance(cause, ssl.SSLError):
            return RemoteEndpointError(
                f"TLS handshake with {where} failed ({cause.reason or cause})",
                hint="is it an https:// endpoint? use http:// for a plain one")
        if isinstance(cause, ConnectionRefusedError) or (
                isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED):
            return RemoteEndpointError(
                f"{where} refused the connection: nothing listens there",
                hint="is the megaservice running, and the port forward "
                     "(kubectl port-forward service/megaservice 8888:8888) up?")
    if isinstance(error, httpx.TimeoutException):
        return RemoteEndpointError(f"{where} did not answer within {timeout:g} s",
                                   hint="is the address right, and the megaservice up?")
    if isinstance(error, httpx.RemoteProtocolError):
        return RemoteEndpointError(f"{where} closed the connection before the answer ended",
                                   hint="check the megaservice's and the LLM's logs")
    return RemoteEndpointError(f"cannot reach {where}: {error}")


def describe_status(response: httpx.Response, endpoint: Endpoint) -> RemoteEndpointError:
    code = response.status_code
    path = response.request.url.path
    if code in (401, 403):
        given = "the token was refused" if endpoint.token else "it needs a token"
        return RemoteEndpointError(
            f"{endpoint.address} answered HTTP {code} for {path}: {given}",
            hint=f"set {TOKEN_VARIABLE} or endpoint_token_file to a valid token")
    if code == 404:
        return RemoteEndpointError(
            f"{endpoint.url}{path} answered HTTP 404: is it a ChatQnA megaservice?",
            hint="give the megaservice's base URL, e.g. http://127.0.0.1:8888")
    body = " ".join(response.text.split())[:200]
    return RemoteEndpointError(f"{endpoint.url}{path} answered HTTP {code}: {body}",
                               hint="check the megaservice's and the LLM's logs")


@dataclass(frozen=True)
class EndpointHealth:
    url: str
    health_seconds: float
    answer_seconds: float
    answer: str
    tls: bool


@contextmanager
def _errors(endpoint: Endpoint, timeout: float) -> Iterator[None]:
    try:
        yield
    except httpx.HTTPError as error:
        raise describe_failure(error, endpoint, timeout) from error


def check_endpoint(endpoint: Endpoint, timeout: float = CHECK_TIMEOUT) -> EndpointHealth:
    """Reachable, healthy, and answering: GET the health check, then ask for one token."""
    with endpoint.client(timeout) as client:
        started = time.monotonic()
        with _errors(endpoint, timeout):
            response = client.get(HEALTH_PATH)
        if response.is_error:
            raise describe_status(response, endpoint)
        healthy = time.monotonic() - started
        body: dict[str, Any] = {"messages": "Say OK.", "max_tokens": 1, "stream": False}
        with _errors(endpoint, timeout):
            answer = client.post(CHATQNA_PATH, json=body)
        if answer.is_error:
            raise describe_status(answer, endpoint)
        try:
            text = answer.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise RemoteEndpointError(
                f"{endpoint.url}{CHATQNA_PATH} answered something that is not a chat "
                f"completion: {' '.join(answer.text.split())[:120]}",
                hint="is it a ChatQnA megaservice?") from error
    return EndpointHealth(endpoint.url, healthy, time.monotonic() - started, text or "",
                          urlsplit(endpoint.url).scheme == "https")


def app_client_options(environ: Mapping[str, str]) -> dict[str, Any]:
    """How the app reaches the megaservice it was pointed at: the remote runtime hands it
    the CA bundle and the token through its environment (``Endpoint.app_environment``)."""
    ca_bundle, token = environ.get(CA_BUNDLE_VARIABLE), environ.get(TOKEN_VARIABLE)
    return {"tls": ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None,
            "headers": {"Authorization": f"Bearer {token}"} if token else None}


def endpoint_checks(settings: Settings, environ: Mapping[str, str]) -> list[Check]:
    """`doctor --runtime remote`: the endpoint checked the way launch checks it."""
    try:
        endpoint = endpoint_from_settings(settings, environ)
    except ConfigError as error:
        return [failed("endpoint", error.message, error.hint or "fix the endpoint setting")]
    try:
        health = check_endpoint(endpoint)
    except RemoteEndpointError as error:
        return [failed("endpoint", error.message, error.hint or "check the endpoint")]
    trust = ("TLS verified" + (f" with {endpoint.ca_bundle}" if endpoint.ca_bundle else "")
             if health.tls else "plain http")
    return [passed("endpoint", f"{endpoint.url}: healthy in {health.health_seconds:.1f} s, "
                               f"a one-token answer in {health.answer_seconds:.1f} s; {trust}; "
                               f"{'a bearer token' if endpoint.token else 'no token'}")]
