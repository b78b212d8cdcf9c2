"""A failing EHR FHIR server, through the app with authentication on: a quick 412, no token in the logs.

Each failure mode of the prefetch fallback (timeouts, 5xx, 401, invalid JSON, endless paging,
redirects elsewhere, slow and dripping responses) must end in a 412 within the configured time
budget, and nothing logged (at DEBUG, every logger) may contain the EHR's access token or the
caller's JWT; nothing at INFO may contain the patient id.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import responses

from cds_service.app import create_app
from cds_service.settings import Settings

from ..security.issuer import FakeIssuer
from ..support.scenarios import load_scenarios

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SCENARIO = {s.name: s for s in load_scenarios()}["folate-without-b12/b12-199-positive"]
PATIENT_ID = SCENARIO.request["context"]["patientId"]
SERVICE = "/cds-services/b12-neuropathy-order-select"
ACCESS_TOKEN = "ehr-access-token-7f3c9a1b2d4e"
TOTAL_TIMEOUT = 1.5
BUDGET = TOTAL_TIMEOUT + 2.0  # the whole call, including the app's own work


@pytest.fixture(scope="module")
def client(knowledge, auth_settings: Settings):
    settings = replace(auth_settings, fhir_connect_timeout=0.5, fhir_read_timeout=0.5, fhir_total_timeout=TOTAL_TIMEOUT,
                       fhir_max_pages=5, allow_http_fhir_server=True, allow_private_fhir_addresses=True)
    return create_app(settings, knowledge=knowledge, clock=lambda: NOW).test_client()


def without_prefetch(fhir_server: str = "https://ehr.example.org/fhir") -> dict:
    body = copy.deepcopy(SCENARIO.request)
    del body["prefetch"]
    body["fhirServer"] = fhir_server
    body["fhirAuthorization"] = {"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "b12-cds-service"}
    return body


def call(client, issuer: FakeIssuer, body: dict, caplog: pytest.LogCaptureFixture) -> tuple[Any, float, str]:
    caplog.set_level(logging.DEBUG)
    jwt_token = issuer.token(f"http://localhost{SERVICE}")
    started = time.monotonic()
    response = client.post(SERVICE, json=body, headers={"Authorization": f"Bearer {jwt_token}"})
    elapsed = time.monotonic() - started
    logged = caplog.text
    assert ACCESS_TOKEN not in logged
    assert jwt_token.split(".")[1] not in logged and jwt_token.split(".")[2] not in logged
    info_and_above = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert PATIENT_ID not in info_and_above
    return response, elapsed, logged


def assert_412(response: Any, elapsed: float, reason: str, logged: str) -> None:
    """412, the cause in the log under the reference the body gives, and in the body one fixed text:
    a refused, a timed-out and a closed connection must look alike to the caller (issue 11)."""
    assert response.status_code == 412, response.get_json()
    body = response.get_json()
    assert body["error"] == "precondition_failed"
    texts = set(body["prefetch"].values())
    assert len(texts) == 1, texts
    reference = re.fullmatch(r"could not be fetched from the FHIR server \(the service's log has the cause under reference ([0-9a-f]{12})\)",
                             texts.pop())
    assert reference, body["prefetch"]
    assert re.search(rf"reference {reference.group(1)}\): .*\b{re.escape(reason)}\b", logged), logged
    assert ACCESS_TOKEN not in str(body)
    assert elapsed < BUDGET, f"took {elapsed:.2f} s"


# --------------------------------------------------------------------------- mocked server

FAILURES = {
    "timeout": ({"body": requests.ReadTimeout()}, "timeout"),
    "connection-refused": ({"body": requests.ConnectionError()}, "connection"),
    "http-500": ({"status": 500, "body": "Internal Server Error"}, "http-5xx"),
    "http-503": ({"status": 503, "json": {"resourceType": "OperationOutcome"}}, "http-5xx"),
    "http-401": ({"status": 401, "json": {"resourceType": "OperationOutcome"}}, "http-401"),
    "http-403": ({"status": 403}, "http-403"),
    "invalid-json": ({"status": 200, "body": "<html>maintenance</html>"}, "invalid-json"),
    "not-a-resource": ({"status": 200, "json": [1, 2, 3]}, "unexpected-resource"),
    "operation-outcome": ({"status": 200, "json": {"resourceType": "OperationOutcome", "issue": []}}, "operation-outcome"),
    "redirect-elsewhere": ({"status": 302, "headers": {"Location": "https://attacker.example/steal"}}, "cross-origin-link"),
    # Same origin, outside the fhirServer base path: an internal admin page on the EHR's host.
    "redirect-outside-base": ({"status": 302, "headers": {"Location": "https://ehr.example.org/admin/secrets"}}, "cross-origin-link"),
    "redirect-dot-segments": ({"status": 302, "headers": {"Location": "https://ehr.example.org/fhir/../admin"}}, "cross-origin-link"),
}


@pytest.mark.parametrize("mode", FAILURES)
def test_each_failure_is_a_quick_412_without_secrets_in_logs(client, issuer, caplog, mode: str) -> None:
    kwargs, reason = FAILURES[mode]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.GET, re.compile(r"https://ehr\.example\.org/fhir/.*"), **kwargs)
        response, elapsed, logged = call(client, issuer, without_prefetch(), caplog)
        assert all("attacker.example" not in c.request.url and "/admin" not in c.request.url for c in mock.calls)
    assert_412(response, elapsed, reason, logged)


def test_endless_paging_stops_at_the_page_limit(client, issuer, caplog) -> None:
    pages = {"count": 0}

    def endless(request: Any) -> tuple[int, dict, str]:
        pages["count"] += 1
        link = f"https://ehr.example.org/fhir/Observation?page={pages['count']}"
        return 200, {"Content-Type": "application/fhir+json"}, \
            f'{{"resourceType": "Bundle", "type": "searchset", "link": [{{"relation": "next", "url": "{link}"}}]}}'

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, re.compile(r"https://ehr\.example\.org/fhir/.*"), callback=endless)
        response, elapsed, logged = call(client, issuer, without_prefetch(), caplog)
    assert_412(response, elapsed, "too-many-pages", logged)
    assert pages["count"] <= 5 * len(response.get_json()["prefetch"])  # at most max_pages per prefetch key


def test_the_token_is_sent_to_the_fhir_server_and_nowhere_else(client, issuer, caplog) -> None:
    seen: list[tuple[str, str | None]] = []

    def record(request: Any) -> tuple[int, dict, str]:
        seen.append((request.url, request.headers.get("Authorization")))
        return 500, {}, ""

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, re.compile(r".*"), callback=record)
        response, elapsed, logged = call(client, issuer, without_prefetch(), caplog)
    assert_412(response, elapsed, "http-5xx", logged)
    assert seen and all(url.startswith("https://ehr.example.org/fhir/") for url, _ in seen)
    assert all(auth == f"Bearer {ACCESS_TOKEN}" for _, auth in seen)


# --------------------------------------------------------------------------- a real slow server

@pytest.fixture()
def slow_server() -> Iterator[str]:
    """Loopback FHIR server: /slow answers after 3 s, /drip sends a byte every 0.2 s forever."""
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/slow/"):
                stop.wait(3)
                self._send(b'{"resourceType": "Bundle", "type": "searchset"}')
            else:  # /drip/
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.end_headers()
                try:
                    self.wfile.write(b'{"resourceType": "Bundle", "entry": [')
                    while not stop.wait(0.2):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                except OSError:
                    pass

        def _send(self, payload: bytes) -> None:
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("path,reason", [("slow", "timeout"), ("drip", "deadline")])
def test_slow_servers_are_cut_off_by_the_time_budget(client, issuer, caplog, slow_server: str, path: str, reason: str) -> None:
    response, elapsed, logged = call(client, issuer, without_prefetch(f"{slow_server}/{path}/fhir"), caplog)
    assert_412(response, elapsed, reason, logged)
