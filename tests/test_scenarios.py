"""Every clinical fixture pair, through the HTTP API, with prefetch and without it.

Without prefetch the service must fetch the same data from the EHR's FHIR server (a
`responses` stand-in that pages its results and checks the bearer token) and give the
same cards.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import responses

from cds_service.app import create_app
from cds_service.pipeline import UNREADABLE_EXTENSION
from cds_service.protocol.validation import response_errors

from .support.fake_fhir import FakeFhirServer, resources_from_prefetch
from .support.scenarios import Scenario, assert_cards_match, load_scenarios

SCENARIOS = load_scenarios()
TOKEN = "fixture-access-token-not-a-secret"


def test_every_recommendation_has_positive_and_negative_cases() -> None:
    by_recommendation: dict[str, set[str]] = {}
    for scenario in SCENARIOS:
        folder = scenario.name.split("/")[0]
        by_recommendation.setdefault(folder, set()).add("positive" if scenario.expected["cards"] else "negative")
    assert by_recommendation, "no fixture pairs found"
    for recommendation, kinds in by_recommendation.items():
        assert kinds == {"positive", "negative"}, f"{recommendation} lacks {({'positive', 'negative'} - kinds)} cases"


@pytest.mark.parametrize("mode", ["prefetch", "fhir-server"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario: Scenario, mode: str, knowledge, auth_settings, issuer, tmp_path) -> None:
    # Authentication on, as in production: every call carries a JWT signed with a generated key.
    # Its own state: each scenario is a first chart opening (cards shown once are remembered).
    settings = dataclasses.replace(auth_settings, state_dir=tmp_path)
    app = create_app(settings, knowledge=knowledge, clock=lambda: scenario.now)
    body = copy.deepcopy(scenario.request)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        if mode == "fhir-server":
            server = FakeFhirServer(resources_from_prefetch(body.pop("prefetch")), token=TOKEN)
            server.install(mock)
            body["fhirAuthorization"] = {
                "access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                "scope": "patient/*.read", "subject": "b12-cds-service",
            }
        path = f"/cds-services/{scenario.expected['service']}"
        response = app.test_client().post(path, json=body, headers=issuer.headers(f"http://localhost{path}"))
    assert response.status_code == 200, response.get_json()
    payload = response.get_json()
    assert response_errors(payload) == []
    assert_cards_match(payload["cards"], scenario.expected["cards"])
    for item in scenario.expected.get("unreadable", []):
        reported = payload.get("extension", {}).get(UNREADABLE_EXTENSION, [])
        assert any(all(entry.get(k) == v for k, v in item.items()) for entry in reported), f"{item} not reported: {reported}"
    if mode == "fhir-server":
        assert server.requests, "the service should have queried the FHIR server"
