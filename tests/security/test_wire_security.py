"""Authentication and CORS over real HTTP against `cds-service serve` with two worker processes.

The replay cache must hold across worker processes: the same token sent on parallel
connections is accepted exactly once.
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from ..support.dates import roll_dates
from ..support.server import wait_until_healthy
from ..support.scenarios import load_scenarios
from .issuer import FakeIssuer, write_issuers_file

ROOT = Path(__file__).resolve().parents[2]
CLIENT = FakeIssuer(iss="https://wire-security-ehr.example")
ORIGIN = "http://localhost:8080"
SCENARIO = {s.name: s for s in load_scenarios()}["folate-without-b12/b12-199-positive"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    directory = tmp_path_factory.mktemp("wire-security")
    log_file = directory / "server.log"
    port = free_port()
    env = {**os.environ, "CDS_LOG_LEVEL": "DEBUG", "CDS_STATE_DIR": str(directory / "state"),
           "CDS_TRUSTED_ISSUERS": str(write_issuers_file(directory / "issuers.json", CLIENT)),
           "CDS_CORS_ALLOWED_ORIGINS": ORIGIN, "CDS_MAX_BODY_BYTES": "65536",
           "CDS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    env.pop("CDS_INSECURE_DISABLE_AUTH", None)
    command = [sys.executable, "-m", "cds_service.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    with open(log_file, "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, url, log_file.read_text)
        yield url, log_file
        assert process.poll() is None, "the server died during the tests"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def rolled_request() -> dict:
    days = (datetime.now(timezone.utc).date() - SCENARIO.now.date()).days
    return roll_dates(copy.deepcopy(SCENARIO.request), days)


def test_a_token_is_accepted_once_across_workers(server) -> None:
    url = f"{server[0]}/cds-services/b12-neuropathy-order-select"
    body = rolled_request()
    for _ in range(3):
        headers = CLIENT.headers(url)

        def send(_: int) -> int:
            # A new connection each time, so the calls are spread over both workers.
            return requests.post(url, json=body, headers={**headers, "Connection": "close"}, timeout=20).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = sorted(pool.map(send, range(8)))
        assert statuses == [200] + [401] * 7


def test_unauthenticated_calls_get_401_with_cors(server) -> None:
    url = f"{server[0]}/cds-services"
    response = requests.get(url, headers={"Origin": ORIGIN}, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_preflight_over_http(server) -> None:
    response = requests.options(f"{server[0]}/cds-services/b12-neuropathy-order-sign", timeout=10, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_oversized_body_is_413_and_the_worker_survives(server) -> None:
    url = f"{server[0]}/cds-services/b12-neuropathy-order-select"
    response = requests.post(url, data=b'{"x": "' + b"a" * 200_000 + b'"}', timeout=20,
                             headers={**CLIENT.headers(url), "Content-Type": "application/json", "Origin": ORIGIN})
    assert response.status_code == 413
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert requests.get(f"{server[0]}/healthz", timeout=10).status_code == 200


def test_the_server_log_never_holds_a_token(server) -> None:
    url, log_file = server
    secret = CLIENT.token(f"{url}/cds-services/elsewhere")
    assert requests.get(f"{url}/cds-services", headers={"Authorization": f"Bearer {secret}"}, timeout=10).status_code == 401
    time.sleep(0.3)
    text = log_file.read_text()
    assert "JWT rejected" in text
    assert secret.split(".")[2] not in text and secret.split(".")[1] not in text
    assert "Bearer ey" not in text  # no Authorization header value, whatever the token
