"""A card shown at order-select is not repeated at order-sign for the same unchanged draft,
unless it is critical: signing is when the harm is committed, so a critical card shows again."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest

from cds_service.app import create_app

from ..security.issuer import insecure_settings
from ..support.scenarios import load_scenarios

SCENARIOS = {s.name: s for s in load_scenarios()}
SCENARIO = SCENARIOS["neuropathic-pain/duloxetine-121-mg-boundary-positive"]  # a warning card
CRITICAL = SCENARIOS["folate-without-b12/b12-199-positive"]


@pytest.fixture()
def client(knowledge, tmp_path: Path):
    app = create_app(insecure_settings(state_dir=tmp_path), knowledge=knowledge, clock=lambda: SCENARIO.now)
    return app.test_client()


def sign_request(select_request: dict) -> dict:
    body = copy.deepcopy(select_request)
    body["hook"] = "order-sign"
    body["hookInstance"] = "5f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"
    del body["context"]["selections"]
    return body


def topics(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [card["source"]["topic"]["code"] for card in response.get_json()["cards"]]


def test_order_sign_does_not_repeat_the_order_select_card(client) -> None:
    select = copy.deepcopy(SCENARIO.request)
    assert topics(client.post("/cds-services/b12-neuropathy-order-select", json=select)) == ["neuropathic-pain"]
    assert topics(client.post("/cds-services/b12-neuropathy-order-sign", json=sign_request(select))) == []


def test_order_sign_repeats_a_critical_card(knowledge, tmp_path: Path) -> None:
    app = create_app(insecure_settings(state_dir=tmp_path), knowledge=knowledge, clock=lambda: CRITICAL.now)
    client = app.test_client()
    select = copy.deepcopy(CRITICAL.request)
    # The start card stands beside the folate card at order-select; it is not an order-sign card.
    assert topics(client.post("/cds-services/b12-neuropathy-order-select", json=select)) == ["folate-without-b12", "start-b12-replacement"]
    assert topics(client.post("/cds-services/b12-neuropathy-order-sign", json=sign_request(select))) == ["folate-without-b12"]


def test_order_sign_shows_the_card_when_the_draft_changed(client) -> None:
    select = copy.deepcopy(SCENARIO.request)
    client.post("/cds-services/b12-neuropathy-order-select", json=select)
    sign = sign_request(select)
    dosage = sign["context"]["draftOrders"]["entry"][0]["resource"]["dosageInstruction"][0]
    dosage["timing"]["repeat"]["frequency"] = 2 * dosage["timing"]["repeat"]["frequency"]
    assert topics(client.post("/cds-services/b12-neuropathy-order-sign", json=sign)) == ["neuropathic-pain"]


def test_order_sign_without_a_prior_order_select_shows_the_card(client) -> None:
    assert topics(client.post("/cds-services/b12-neuropathy-order-sign", json=sign_request(SCENARIO.request))) == ["neuropathic-pain"]


def test_repeated_order_select_keeps_showing_the_card(client) -> None:
    # The sandbox re-fires order-select on every change: the card must stay on screen.
    for _ in range(2):
        assert topics(client.post("/cds-services/b12-neuropathy-order-select", json=SCENARIO.request)) == ["neuropathic-pain"]


def test_work_up_card_is_shown_once_per_work_up_on_patient_view(knowledge, auth_settings, issuer, tmp_path) -> None:
    scenario = next(s for s in load_scenarios() if s.name == "exclude-other-causes/diagnosis-snomed-neuropathy-positive")
    app = create_app(replace(auth_settings, state_dir=tmp_path), knowledge=knowledge, clock=lambda: scenario.now)
    path = f"/cds-services/{scenario.expected['service']}"

    def topics(body: dict) -> list[str]:
        response = app.test_client().post(path, json=body, headers=issuer.headers(f"http://localhost{path}"))
        assert response.status_code == 200
        return [card["source"]["topic"]["code"] for card in response.get_json()["cards"]]

    first = topics(scenario.request)
    assert "exclude-other-causes" in first
    # The next chart opening, same work-up missing: not again (other cards are unaffected).
    again = topics(scenario.request)
    assert "exclude-other-causes" not in again
    assert sorted(again) == sorted(t for t in first if t != "exclude-other-causes")
    # Another patient with the same chart is a first opening for them.
    other = json.loads(json.dumps(scenario.request).replace(scenario.request["context"]["patientId"], "pat-someone-else"))
    assert "exclude-other-causes" in topics(other)
