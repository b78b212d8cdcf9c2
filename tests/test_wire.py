"""The real thing on loopback: `cds-service serve` (granian) answering over HTTP.

Uses the wall clock: the fixture's dates are rolled forward so they are as old today as
they were at the fixture's clock.
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import requests

from .security.issuer import FakeIssuer, write_issuers_file
from .support.dates import roll_dates
from .support.fake_fhir import resources_from_prefetch
from .support.fhir_http import serve_fhir
from .support.scenarios import load_scenarios
from .support.server import wait_until_healthy

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = {s.name: s for s in load_scenarios()}
# The client of these tests: a generated ES384 key the server trusts through its issuers file.
WIRE_ISSUER = FakeIssuer(iss="https://wire-test-ehr.example")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def service_url() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "CDS_ALLOW_HTTP_FHIR_SERVER": "true", "CDS_ALLOW_PRIVATE_FHIR_ADDRESSES": "true", "CDS_LOG_LEVEL": "WARNING"}
    env.update(wire_test_environment())
    env["CDS_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "cds_service.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(process, url, lambda: process.stdout.read().decode(errors="replace") if process.stdout else "")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def wire_test_environment() -> dict[str, str]:
    """Extra environment for the server under test (authentication settings live here)."""
    directory = Path(tempfile.mkdtemp(prefix="cds-wire-"))
    atexit.register(shutil.rmtree, directory, True)
    issuers = write_issuers_file(directory / "trusted-issuers.json", WIRE_ISSUER)
    return {"CDS_TRUSTED_ISSUERS": str(issuers), "CDS_STATE_DIR": str(directory / "state")}


def auth_headers(url: str) -> dict[str, str]:
    """Headers a real client would send to `url` (the Authorization JWT when auth is on)."""
    return WIRE_ISSUER.headers(url)


def rolled(name: str) -> dict:
    scenario = SCENARIOS[name]
    days = (datetime.now(timezone.utc).date() - scenario.now.date()).days
    return roll_dates(copy.deepcopy(scenario.request), days)


def test_discovery_over_http(service_url: str) -> None:
    url = f"{service_url}/cds-services"
    response = requests.get(url, headers=auth_headers(url), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert sorted(s["id"] for s in response.json()["services"]) == [
        "b12-neuropathy-order-select", "b12-neuropathy-order-sign", "b12-neuropathy-patient-view"]


def test_hook_call_with_prefetch_over_http(service_url: str) -> None:
    url = f"{service_url}/cds-services/b12-neuropathy-order-select"
    response = requests.post(url, json=rolled("folate-without-b12/b12-199-positive"), headers=auth_headers(url), timeout=10)
    assert response.status_code == 200
    cards = response.json()["cards"]
    assert [(c["source"]["topic"]["code"], c["indicator"]) for c in cards] == [("folate-without-b12", "critical"), ("start-b12-replacement", "warning")]


def test_hook_call_fetching_from_a_real_fhir_server(service_url: str) -> None:
    body = rolled("maintenance-overdue/overdue-92-days-positive")
    resources = resources_from_prefetch(body.pop("prefetch"))
    token = "wire-test-access-token"
    url = f"{service_url}/cds-services/b12-neuropathy-patient-view"
    with serve_fhir(resources, token=token) as fhir:
        body["fhirServer"] = fhir.base
        body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                     "scope": "patient/*.read", "subject": "b12-cds-service"}
        response = requests.post(url, json=body, headers=auth_headers(url), timeout=20)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert [(c["source"]["topic"]["code"], c["indicator"]) for c in cards] == [("maintenance-overdue", "warning")]
    assert "92 days ago" in cards[0]["summary"]
    assert len(fhir.requests) >= 5  # one query per prefetch key, plus pages


DSTU2_TYPES = ("Patient", "Condition", "Observation", "MedicationOrder", "MedicationAdministration", "Procedure", "DiagnosticOrder")


def test_a_dstu2_fhir_server_is_asked_in_its_own_names_over_http(service_url: str) -> None:
    # The sandbox's DSTU2 mode: the chart lives on a DSTU2 server, here with an active DSTU2
    # MedicationOrder for folic acid that no prefetch carries.
    capture = json.loads((ROOT / "fhir_fixtures" / "real-clients" / "cds-hooks-sandbox" / "dstu2-patient-view.json").read_text())
    body = capture["request"]
    days = (datetime.now(timezone.utc).date() - date(2026, 12, 1)).days
    body = roll_dates(body, days)
    resources = resources_from_prefetch(body.pop("prefetch"))
    resources.append({
        "resourceType": "MedicationOrder", "id": "p2-folic", "status": "active", "patient": {"reference": "Patient/p2"},
        "dateWritten": roll_dates({"d": "2026-11-20"}, days)["d"],
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "310410"}]},
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnits": "d"}},
                               "doseQuantity": {"value": 1, "unit": "tablet"}}],
    })
    url = f"{service_url}/cds-services/b12-neuropathy-patient-view"
    with serve_fhir(resources, fhir_version="1.0.2", types=DSTU2_TYPES) as fhir:
        body["fhirServer"] = fhir.base
        responses_ = [requests.post(url, json=body, headers=auth_headers(url), timeout=20) for _ in range(3)]
    for response in responses_:
        assert response.status_code == 200, response.text
        cards = {(c["source"]["topic"]["code"], c["indicator"]) for c in response.json()["cards"]}
        assert ("folate-without-b12", "warning") in cards  # the DSTU2 order was fetched and read
        assert ("start-b12-replacement", "critical") in cards
        assert "extension" not in response.json()
    asked = [request.split("/fhir/", 1)[1].split("?")[0] for request in fhir.requests]
    assert {"MedicationOrder", "DiagnosticOrder"} <= set(asked)
    assert "MedicationRequest" not in asked and "ServiceRequest" not in asked
    assert 1 <= asked.count("metadata") <= 2  # once per worker (two workers), then remembered


def test_fhir_server_down_is_412_over_http(service_url: str) -> None:
    body = rolled("maintenance-overdue/overdue-92-days-positive")
    del body["prefetch"]
    body["fhirServer"] = f"http://127.0.0.1:{free_port()}/fhir"  # nothing listens there
    url = f"{service_url}/cds-services/b12-neuropathy-patient-view"
    response = requests.post(url, json=body, headers=auth_headers(url), timeout=20)
    assert response.status_code == 412
    assert response.json()["error"] == "precondition_failed"
