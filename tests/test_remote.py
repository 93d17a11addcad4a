"""The remote runtime's endpoint checks, against a real megaservice (real llama.cpp and
SmolLM2) behind an HTTPS front with a bearer-token check, on 127.0.0.1, with a CA the test
makes: the good case passes, and each way it goes wrong is one line saying what to do."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.checks import Status
from launcher.errors import ConfigError, RemoteEndpointError
from launcher.ports import pick_free_port
from launcher.remote import (
    Endpoint,
    app_client_options,
    check_endpoint,
    endpoint_checks,
    endpoint_from_settings,
)
from launcher.settings import Settings
from opea.client import OpeaClient
from opea.errors import ClientError
from tests.http_stub import reply, serve
from tests.services import llm_server, megaservice
from tests.tls_front import Pki, https_front, make_pki

TOKEN = secrets.token_hex(16)


@pytest.fixture(scope="module")
def upstream(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("remote-logs")
    with llm_server(smollm2, logs) as llm, megaservice(llm, logs) as url:
        yield url


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def front(upstream: str, pki: Pki) -> Iterator[str]:
    with https_front(upstream, pki, TOKEN) as url:
        yield url


def failure(endpoint: Endpoint, timeout: float = 60.0) -> str:
    with pytest.raises(RemoteEndpointError) as caught:
        check_endpoint(endpoint, timeout)
    line = caught.value.one_line()
    assert "\n" not in line
    return line


def test_a_good_token_and_the_right_ca_reach_a_one_token_answer(front: str, pki: Pki) -> None:
    # The first request warms the model up: give it time on a busy machine.
    health = check_endpoint(Endpoint(front, str(pki.ca_file), TOKEN), timeout=120)
    assert health.tls and health.answer.strip()
    assert repr(Endpoint(front, None, TOKEN)).count(TOKEN) == 0


def test_a_wrong_or_missing_token_is_refused(front: str, pki: Pki) -> None:
    line = failure(Endpoint(front, str(pki.ca_file), "wrong"))
    assert "answered HTTP 401 for /v1/health_check: the token was refused" in line
    assert "OPEA_CHAT_ENDPOINT_TOKEN" in line and "wrong" not in line
    assert "it needs a token" in failure(Endpoint(front, str(pki.ca_file), None))


def test_403_is_a_refused_token_too() -> None:
    with serve(reply(403, b"forbidden")) as url:
        assert "answered HTTP 403" in failure(Endpoint(url, None, "t"))


def test_a_certificate_from_another_ca_names_the_certificate(front: str,
                                                            tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other", ca_name="some other CA")
    line = failure(Endpoint(front, str(other.ca_file), TOKEN))
    assert line.startswith(f"TLS: {front.removeprefix('https://')} showed certificate "
                           "CN=megaservice for 127.0.0.1, issued by CN=opea-chat test CA, "
                           "which is not trusted")
    assert "set ca_bundle" in line
    # Without a CA bundle, the system's trust store decides: not trusted either.
    assert "which is not trusted" in failure(Endpoint(front, None, TOKEN))


def test_a_certificate_for_another_host_is_refused(upstream: str, tmp_path: Path) -> None:
    elsewhere = make_pki(tmp_path / "elsewhere", hosts=("chat.example.com",))
    with https_front(upstream, elsewhere, TOKEN) as url:
        line = failure(Endpoint(url, str(elsewhere.ca_file), TOKEN))
    assert "for chat.example.com" in line and "not valid for the host 127.0.0.1" in line


def test_an_answer_cut_off_mid_stream_says_so(upstream: str, pki: Pki) -> None:
    with https_front(upstream, pki, TOKEN, cut_after=40) as url, \
            OpeaClient(url, **app_client_options({"OPEA_CHAT_CA_BUNDLE": str(pki.ca_file),
                                                  "OPEA_CHAT_ENDPOINT_TOKEN": TOKEN})
                       ) as client, pytest.raises(ClientError) as caught:
        for _ in client.chat_stream("Tell me a long story about a cat."):
            pass
    assert "closed the connection before the answer ended" in caught.value.one_line()


def test_a_refused_connection() -> None:
    port = pick_free_port()
    line = failure(Endpoint(f"https://127.0.0.1:{port}"))
    assert line.startswith(f"127.0.0.1:{port} refused the connection: nothing listens there")


def test_404_asks_whether_it_is_a_chatqna_megaservice() -> None:
    with serve(reply(404, b"Not Found")) as url:
        assert f"{url}/v1/health_check answered HTTP 404: is it a ChatQnA megaservice?" in \
            failure(Endpoint(url))


def test_no_answer_in_time() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        line = failure(Endpoint(f"http://127.0.0.1:{port}"), timeout=1)
    assert line.startswith(f"127.0.0.1:{port} did not answer within 1 s")


def test_a_name_that_does_not_resolve() -> None:
    # In a network namespace of its own (loopback only), the resolver's query cannot leave
    # the machine: the lookup fails the way it does for a name no DNS server knows.
    code = ("from launcher.remote import Endpoint, check_endpoint\n"
            "from launcher.errors import RemoteEndpointError\n"
            "try:\n    check_endpoint(Endpoint('https://megaservice.cluster.invalid'))\n"
            "except RemoteEndpointError as e:\n    print(e.one_line())\n")
    result = subprocess.run(["unshare", "-rn", sys.executable, "-c", code],
                            capture_output=True, text=True, check=True)
    assert result.stdout.startswith(
        "the endpoint's host name megaservice.cluster.invalid does not resolve")


@pytest.mark.parametrize(("endpoint", "message"), [
    ("", "the remote runtime needs the megaservice's address"),
    ("ftp://host", "is not an http:// or https:// URL"),
    ("http://host:8888/v1/chatqna", "has a path (/v1/chatqna)"),
])
def test_a_bad_endpoint_setting_is_one_line(endpoint: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        endpoint_from_settings(Settings(endpoint=endpoint), {})


def test_a_token_is_never_sent_in_the_clear_across_the_network() -> None:
    with pytest.raises(ConfigError, match="plain http: the token would cross the network"):
        endpoint_from_settings(Settings(endpoint="http://chat.example.com"),
                               {"OPEA_CHAT_ENDPOINT_TOKEN": "t"})
    # A port forward on this machine is fine.
    assert endpoint_from_settings(Settings(endpoint="http://127.0.0.1:8888"),
                                  {"OPEA_CHAT_ENDPOINT_TOKEN": TOKEN}).token == TOKEN


def test_the_token_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "token"
    in_file, in_environment = secrets.token_hex(8), secrets.token_hex(8)
    file.write_text(in_file + "\n")
    settings = Settings(endpoint="https://h", endpoint_token_file=str(file))
    assert endpoint_from_settings(settings, {}).token == in_file
    assert endpoint_from_settings(settings, {"OPEA_CHAT_ENDPOINT_TOKEN": in_environment}
                                  ).token == in_environment
    missing = Settings(endpoint="https://h", endpoint_token_file=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="cannot read the endpoint token file"):
        endpoint_from_settings(missing, {})


def test_doctor_s_endpoint_check_passes_or_says_what_to_fix(front: str, pki: Pki) -> None:
    good = Settings(endpoint=front, ca_bundle=str(pki.ca_file))
    [check] = endpoint_checks(good, {"OPEA_CHAT_ENDPOINT_TOKEN": TOKEN})
    assert check.status is Status.PASS and "TLS verified with" in check.detail
    [refused] = endpoint_checks(good, {})
    assert refused.status is Status.FAIL and "it needs a token" in refused.detail
    assert refused.fix == "set OPEA_CHAT_ENDPOINT_TOKEN or endpoint_token_file to a valid token"
    [unset] = endpoint_checks(Settings(), {})
    assert unset.status is Status.FAIL and "--endpoint URL" in (unset.fix or "")
