"""Slow clients cannot starve the others (issue 11): a real server on loopback, 64 slow clients.

Half of them drip header lines (slowloris), half send their headers and then drip the body; the
server closes them at its header and body timeouts and they reconnect, as an attacker would.
Meanwhile one normal client makes authenticated hook calls one after another. Before, with
gunicorn's sync workers, two such clients stalled every other call for about 30 s.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import requests

from bench.slow_clients import measure

from .security.issuer import FakeIssuer, write_issuers_file
from .support.server import running_service
from .test_wire import rolled

CLIENT = FakeIssuer(iss="https://slow-clients-test-ehr.example")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("slow-clients")
    env = {"CDS_TRUSTED_ISSUERS": str(write_issuers_file(directory / "issuers.json", CLIENT)),
           "CDS_STATE_DIR": str(directory / "state"), "CDS_LOG_LEVEL": "WARNING",
           "CDS_HEADER_READ_TIMEOUT": "2", "CDS_BODY_READ_TIMEOUT": "3"}
    with running_service(env, directory / "server.log") as url:
        yield url


def test_a_normal_client_is_served_while_64_slow_clients_are_held_open(service: str) -> None:
    url = f"{service}/cds-services/b12-neuropathy-order-select"
    body = rolled("folate-without-b12/b12-199-positive")

    def call(session: requests.Session) -> int:
        response = session.post(url, json=body, headers=CLIENT.headers(url), timeout=30)
        assert response.json()["cards"][0]["indicator"] == "critical"
        return response.status_code

    # About 5 s of calls: past both timeouts, so slow clients are closed and reconnect meanwhile.
    result = measure(service, slow=64, calls=1000, call=call, settle=1.0)
    print(result)
    assert result["failures"] == 0
    assert result["p99_ms"] < 1000  # sync workers: every call failed after 30 s
    assert result["slow_connections_closed_by_server"] > 0


def test_slow_connections_are_closed_at_the_header_and_body_timeouts(service: str) -> None:
    host, port = service.removeprefix("http://").split(":")
    header_drip = socket.create_connection((host, int(port)), timeout=10)
    body_drip = socket.create_connection((host, int(port)), timeout=10)
    header_drip.sendall(b"POST /cds-services/b12-neuropathy-order-select HTTP/1.1\r\nHost: x\r\n")
    body_drip.sendall(b"POST /cds-services/b12-neuropathy-order-select HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
    answers = {}
    started = time.monotonic()
    for name, sock in (("header", header_drip), ("body", body_drip)):
        chunks = []
        while time.monotonic() - started < 10:
            try:
                sock.sendall(b"X-Drip: 1\r\n" if name == "header" else b" ")
            except OSError:
                break
            sock.settimeout(0.5)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        answers[name] = (b"".join(chunks), time.monotonic() - started)
        sock.close()
    # The header timeout (2 s) ends the first connection; the body timeout (3 s) answers 408 JSON.
    assert answers["header"][1] < 9
    assert answers["body"][1] < 9
    assert answers["body"][0].startswith(b"HTTP/1.1 408")
    assert b'"error":"request_timeout"' in answers["body"][0]


def test_the_server_still_answers_after_the_slow_clients(service: str) -> None:
    assert requests.get(f"{service}/healthz", timeout=5).status_code == 200

