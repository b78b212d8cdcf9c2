"""HTTP behaviour of discovery, hook calls and feedback (Flask test client)."""

from __future__ import annotations

import copy
import re
from datetime import datetime, timezone

import pytest
import requests
import responses

from cds_service.app import create_app
from cds_service.protocol.validation import discovery_errors

from ..security.issuer import insecure_settings
from ..support.scenarios import load_scenarios

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SCENARIOS = {s.name: s for s in load_scenarios()}
POSITIVE = SCENARIOS["folate-without-b12/b12-199-positive"]


@pytest.fixture()
def client(knowledge):
    # Authentication is tested in tests/security/; these tests are about the API behind it.
    return create_app(insecure_settings(), knowledge=knowledge, clock=lambda: NOW).test_client()


def positive_request() -> dict:
    return copy.deepcopy(POSITIVE.request)


def test_discovery_lists_one_service_per_hook_with_derived_prefetch(client) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    body = response.get_json()
    assert discovery_errors(body) == []
    hooks = sorted(service["hook"] for service in body["services"])
    assert hooks == ["order-select", "order-sign", "patient-view"]
    by_hook = {service["hook"]: service for service in body["services"]}
    prefetch = by_hook["patient-view"]["prefetch"]
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    # Observations are filtered to the LOINC codes the recommendations read.
    observations = prefetch["observations"]
    assert observations.startswith("Observation?patient={{context.patientId}}&code=")
    assert {"2132-9", "14685-2", "13965-9", "13964-2"} <= set(observations.split("code=")[1].split(","))
    assert prefetch["medicationRequests"] == "MedicationRequest?patient={{context.patientId}}"
    assert prefetch["medicationAdministrations"] == "MedicationAdministration?patient={{context.patientId}}"
    assert prefetch["conditions"] == "Condition?patient={{context.patientId}}"
    # order hooks need no MedicationAdministration-free shortcut: every template stays in the 2.0 subset
    for service in body["services"]:
        for template in service["prefetch"].values():
            assert "{{context.patientId}}" in template
            assert "_include" not in template and ":" not in template.split("?")[-1]


def test_positive_request_returns_a_critical_card(client) -> None:
    response = client.post("/cds-services/b12-neuropathy-order-select", json=positive_request())
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert [card["indicator"] for card in cards] == ["critical", "warning"]  # folate card, then the start card
    assert cards[0]["source"]["topic"] == {
        "system": "http://b12cds.example.org/fhir",
        "code": "folate-without-b12",
        "display": "Folic acid without vitamin B12 in suspected B12 deficiency",
    }
    # uuids are stable for one hookInstance, different for another
    again = client.post("/cds-services/b12-neuropathy-order-select", json=positive_request()).get_json()["cards"]
    assert again[0]["uuid"] == cards[0]["uuid"]
    other = positive_request()
    other["hookInstance"] = "9b5d1f4e-9d55-4f3a-9d3b-2f6c1a4e5b6c"
    assert client.post("/cds-services/b12-neuropathy-order-select", json=other).get_json()["cards"][0]["uuid"] != cards[0]["uuid"]


def test_suggested_order_is_ready_to_sign(client) -> None:
    card = client.post("/cds-services/b12-neuropathy-order-select", json=positive_request()).get_json()["cards"][0]
    create = card["suggestions"][0]["actions"][0]
    resource = create["resource"]
    assert resource["resourceType"] == "MedicationRequest"
    assert resource["status"] == "draft" and resource["intent"] == "order"
    assert resource["subject"] == {"reference": f"Patient/{POSITIVE.request['context']['patientId']}"}
    assert resource["requester"] == {"reference": "Practitioner/pr-1"}
    assert resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 1
    assert card["selectionBehavior"] == "any"


def test_unknown_service_is_404_json(client) -> None:
    response = client.post("/cds-services/no-such-service", json=positive_request())
    assert response.status_code == 404
    assert response.get_json()["error"] == "unknown_service"


def test_hook_mismatch_is_400_naming_the_field(client) -> None:
    body = positive_request()
    body["hook"] = "patient-view"
    response = client.post("/cds-services/b12-neuropathy-order-select", json=body)
    assert response.status_code == 400
    assert response.get_json()["field"] == "hook"


def test_missing_context_field_is_400_naming_it(client) -> None:
    body = positive_request()
    del body["context"]["patientId"]
    response = client.post("/cds-services/b12-neuropathy-order-select", json=body)
    assert response.status_code == 400
    assert response.get_json()["field"] == "context.patientId"


def test_malformed_json_is_400(client) -> None:
    response = client.post("/cds-services/b12-neuropathy-order-select", data=b'{"hook": ', content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "malformed_json"


def test_wrong_content_type_is_415(client) -> None:
    response = client.post("/cds-services/b12-neuropathy-order-select", data=b"hook=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


def test_body_over_the_limit_is_413_json(knowledge) -> None:
    app = create_app(insecure_settings(max_body_bytes=2048), knowledge=knowledge, clock=lambda: NOW)
    response = app.test_client().post("/cds-services/b12-neuropathy-order-select", json=positive_request())
    assert response.status_code == 413
    assert response.get_json()["error"] == "request_too_large"


def test_wrong_method_is_405_json(client) -> None:
    response = client.delete("/cds-services")
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"


def test_fhir_server_down_without_prefetch_is_412(client) -> None:
    body = positive_request()
    del body["prefetch"]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.GET, re.compile(r"https://ehr\.example\.org/.*"), body=requests.ConnectionError("refused"))
        response = client.post("/cds-services/b12-neuropathy-order-select", json=body)
    assert response.status_code == 412
    payload = response.get_json()
    assert payload["error"] == "precondition_failed"
    assert set(payload["prefetch"]) == {"patient", "observations", "conditions", "medicationRequests",
                                        "medicationAdministrations", "procedures", "serviceRequests"}


def test_no_prefetch_and_no_fhir_server_is_412(client) -> None:
    body = positive_request()
    del body["prefetch"]
    del body["fhirServer"]
    response = client.post("/cds-services/b12-neuropathy-order-select", json=body)
    assert response.status_code == 412


def test_operation_outcome_in_prefetch_is_412_and_not_refetched(client) -> None:
    body = positive_request()
    body["prefetch"]["observations"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        response = client.post("/cds-services/b12-neuropathy-order-select", json=body)
        assert len(mock.calls) == 0
    assert response.status_code == 412
    assert list(response.get_json()["prefetch"]) == ["observations"]


def test_null_prefetch_means_no_data_and_is_not_fetched(client) -> None:
    body = positive_request()
    for key in ("conditions", "medicationRequests", "medicationAdministrations"):
        body["prefetch"][key] = None
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        response = client.post("/cds-services/b12-neuropathy-order-select", json=body)
        assert len(mock.calls) == 0
    assert response.status_code == 200
    assert [card["indicator"] for card in response.get_json()["cards"]] == ["critical", "warning"]


def test_plain_http_fhir_server_is_refused_by_default(client) -> None:
    body = positive_request()
    del body["prefetch"]["observations"]
    body["fhirServer"] = "http://ehr.example.org/fhir"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        response = client.post("/cds-services/b12-neuropathy-order-select", json=body)
        assert len(mock.calls) == 0
    assert response.status_code == 412
    assert "https" in response.get_json()["prefetch"]["observations"]


def test_unrequested_prefetch_keys_are_ignored(client) -> None:
    body = positive_request()
    body["prefetch"]["somethingElse"] = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {"resourceType": "Foo"}}]}
    response = client.post("/cds-services/b12-neuropathy-order-select", json=body)
    assert response.status_code == 200
    assert len(response.get_json()["cards"]) == 2


def test_invalid_fhir_resource_in_prefetch_is_ignored_not_fatal(client) -> None:
    body = positive_request()
    broken = {"resourceType": "Observation", "id": "broken", "status": "final",
              "code": {"coding": [{"system": "http://loinc.org", "code": "2132-9"}]},
              "subject": {"reference": "Patient/x"}, "effectiveDateTime": "yesterday",
              "valueQuantity": {"value": "abc", "unit": "pg/mL"}}
    body["prefetch"]["observations"]["entry"].append({"resource": broken})
    response = client.post("/cds-services/b12-neuropathy-order-select", json=body)
    assert response.status_code == 200
    assert [card["indicator"] for card in response.get_json()["cards"]] == ["critical", "warning"]


def test_feedback_is_accepted(client) -> None:
    feedback = {"feedback": [{"card": "0b8a8e2c-3a4a-4c1e-9d6b-1a2b3c4d5e6f", "outcome": "overridden",
                              "overrideReason": {"reason": {"code": "patient-declined", "system": "http://b12cds.example.org/fhir/CodeSystem/override-reason"}},
                              "outcomeTimestamp": "2026-06-01T12:01:00Z"}]}
    response = client.post("/cds-services/b12-neuropathy-order-select/feedback", json=feedback)
    assert response.status_code == 200


def test_invalid_feedback_is_400(client) -> None:
    response = client.post("/cds-services/b12-neuropathy-order-select/feedback", json={"feedback": [{"card": "x", "outcome": "accepted", "outcomeTimestamp": "2026-06-01T12:01:00Z"}]})
    assert response.status_code == 400


def test_health(client) -> None:
    assert client.get("/healthz").get_json()["status"] == "ok"
