"""What the real CDS Hooks sandbox sent, as it was sent, gives the cards a clinician expects.

The bodies in ``fhir_fixtures/real-clients/cds-hooks-sandbox/`` are captures from the sandbox
running in a browser (R4 and DSTU2 modes), not tidied: a draft ``category`` as one object, a
DSTU2 ``MedicationOrder``, DSTU2 Conditions, prefetch keys the sandbox left out. Authentication
is on; the DSTU2 requests' ``fhirServer`` is a ``responses`` stand-in that answers like a DSTU2
server (``/metadata`` says 1.0.2; only DSTU2 type names exist).
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import responses

from cds_service.app import create_app
from cds_service.protocol.validation import response_errors

from .security.issuer import FakeIssuer, auth_settings

CAPTURES = Path(__file__).resolve().parents[1] / "fhir_fixtures" / "real-clients" / "cds-hooks-sandbox"
EXPECTED = json.loads((CAPTURES / "expected.json").read_text(encoding="utf-8"))
NOW = datetime.fromisoformat(EXPECTED["now"].replace("Z", "+00:00"))
SERVICES = {"patient-view": "b12-neuropathy-patient-view", "order-select": "b12-neuropathy-order-select", "order-sign": "b12-neuropathy-order-sign"}
DSTU2_TYPES = {"Patient", "Condition", "Observation", "MedicationOrder", "MedicationAdministration", "Procedure", "DiagnosticOrder", "ProcedureRequest"}


def capture(name: str) -> dict[str, Any]:
    return json.loads((CAPTURES / name).read_text(encoding="utf-8"))


def test_every_capture_has_an_expectation() -> None:
    files = {path.name for path in CAPTURES.glob("*.json")} - {"expected.json"}
    assert files == set(EXPECTED["requests"])


@pytest.fixture()
def client(tmp_path: Path, issuer: FakeIssuer):
    settings = dataclasses.replace(auth_settings(tmp_path, issuer), allow_http_fhir_server=True)  # the loopback FHIR servers
    app = create_app(settings, clock=lambda: NOW)
    return app.test_client()


class Dstu2Server:
    """Answers like the DSTU2 server the sandbox used: searches of DSTU2 types find nothing more."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.paths: list[str] = []

    def install(self, mock: responses.RequestsMock) -> None:
        mock.add_callback(responses.GET, re.compile(re.escape(self.base) + r"/.*"), callback=self.answer)

    def answer(self, request: Any) -> tuple[int, dict[str, str], str]:
        path = request.path_url[len("/"):]
        self.paths.append(path)
        headers = {"Content-Type": "application/json+fhir"}
        if path == "metadata":
            return 200, headers, json.dumps({"resourceType": "Conformance", "fhirVersion": "1.0.2", "status": "active"})
        resource_type = re.split(r"[/?]", path, maxsplit=1)[0]
        if resource_type not in DSTU2_TYPES:
            outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported"}]}
            return 404, headers, json.dumps(outcome)
        return 200, headers, json.dumps({"resourceType": "Bundle", "type": "searchset", "total": 0})


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED["requests"].items() if not e.get("feedback")))
def test_sandbox_request_as_sent_gets_the_expected_cards(name: str, client, issuer: FakeIssuer) -> None:
    expected = EXPECTED["requests"][name]
    body = capture(name)["request"]
    path = f"/cds-services/{SERVICES[body['hook']]}"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        server = Dstu2Server(body["fhirServer"])
        if expected.get("dstu2Server"):
            server.install(mock)
        response = client.post(path, json=body, headers=issuer.headers(f"http://localhost{path}"))
    assert response.status_code == expected["status"], response.get_json()
    payload = response.get_json()
    assert response_errors(payload) == []
    got = sorted((card["source"]["topic"]["code"], card["indicator"]) for card in payload["cards"])
    assert got == sorted(tuple(card) for card in expected["cards"])
    assert "extension" not in payload, payload.get("extension")  # every element the rules use was read
    if expected.get("dstu2Server"):
        # Asked in the server's own version: MedicationOrder and DiagnosticOrder, never R4 names.
        queried = {re.split(r"[/?]", p, maxsplit=1)[0] for p in server.paths}
        assert "metadata" in queried
        assert {"MedicationOrder", "DiagnosticOrder"} <= queried
        assert not queried & {"MedicationRequest", "ServiceRequest"}


@pytest.mark.parametrize("name", sorted(n for n, e in EXPECTED["requests"].items() if e.get("feedback")))
def test_sandbox_feedback_as_sent_is_accepted(name: str, client, issuer: FakeIssuer) -> None:
    path = "/cds-services/b12-neuropathy-order-select/feedback"
    response = client.post(path, json=capture(name)["request"], headers=issuer.headers(f"http://localhost{path}"))
    assert response.status_code == EXPECTED["requests"][name]["status"]


def test_an_order_the_sandbox_sends_with_an_unreadable_medication_is_not_an_all_clear(client, issuer: FakeIssuer) -> None:
    body = capture("order-select-folic-acid.json")["request"]
    draft = body["context"]["draftOrders"]["entry"][0]["resource"]
    draft["medicationCodeableConcept"]["coding"][0]["code"] = 310410  # a number: not a FHIR code
    path = "/cds-services/b12-neuropathy-order-select"
    response = client.post(path, json=body, headers=issuer.headers(f"http://localhost{path}"))
    assert response.status_code == 200
    payload = response.get_json()
    # The patient still gets the start-B12 card (deficient, neuropathy, untreated); the folate check
    # could not run on this draft, and the clinician is told so.
    cards = {c["source"]["topic"]["code"]: c for c in payload["cards"]}
    assert {code: c["indicator"] for code, c in cards.items()} == {"start-b12-replacement": "critical", "order-not-checked": "info"}
    assert "Folic Acid 1 MG Oral Tablet" in cards["order-not-checked"]["detail"]
    assert payload["extension"]["org.example.b12cds.unreadable"] == [{
        "resourceType": "MedicationRequest", "id": "request-123",
        "element": "medicationCodeableConcept.coding[0].code", "issue": "not a valid code",
    }]


def test_thousands_of_unreadable_elements_are_counted_not_all_listed(client, issuer: FakeIssuer) -> None:
    body = capture("patient-view.json")["request"]
    bad = [{"resourceType": "Observation", "id": f"o{i}", "status": "final", "effectiveDateTime": "yesterday",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2132-9"}]}} for i in range(1500)]
    body["prefetch"]["observations"]["entry"] += [{"resource": r} for r in bad]
    path = "/cds-services/b12-neuropathy-patient-view"
    response = client.post(path, json=body, headers=issuer.headers(f"http://localhost{path}"))
    assert response.status_code == 200
    listed = response.get_json()["extension"]["org.example.b12cds.unreadable"]
    assert len(listed) == 1001
    assert listed[-1] == {"resourceType": "(more)", "issue": "500 more unreadable element(s) or resource(s) not listed"}


def test_selecting_a_draft_with_nothing_picked_judges_no_other_draft(client, issuer: FakeIssuer) -> None:
    # Rx View: the folic acid draft was signed into the list earlier; the clinician now opens a new,
    # empty order. Only the selected (empty) draft is this call's order: no card for the other one.
    body = capture("order-select-folic-acid.json")["request"]
    empty = capture("order-select-before-a-medication-is-picked.json")["request"]["context"]["draftOrders"]["entry"][0]["resource"]
    empty = dict(empty, id="request-456")
    body["context"]["draftOrders"]["entry"].append({"resource": empty})
    body["context"]["selections"] = ["MedicationRequest/request-456"]
    path = "/cds-services/b12-neuropathy-order-select"
    response = client.post(path, json=body, headers=issuer.headers(f"http://localhost{path}"))
    assert response.status_code == 200
    assert response.get_json()["cards"] == []
