"""The work budget per call (issue 11): too many resources or too long a call is a 422 JSON."""

from __future__ import annotations

import copy

from cds_service.app import create_app

from ..security.issuer import insecure_settings
from ..support.scenarios import load_scenarios

SCENARIO = {s.name: s for s in load_scenarios()}["folate-without-b12/b12-199-positive"]
SERVICE = "/cds-services/b12-neuropathy-order-select"


def call(knowledge, **settings):
    app = create_app(insecure_settings(**settings), knowledge=knowledge, clock=lambda: SCENARIO.now)
    return app.test_client().post(SERVICE, json=copy.deepcopy(SCENARIO.request))


def test_the_fixture_is_within_the_default_budget(knowledge) -> None:
    assert call(knowledge).status_code == 200


def test_more_resources_than_the_budget_is_422(knowledge) -> None:
    response = call(knowledge, max_resources=1)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "work_budget_exceeded"
    assert "at most 1 are read" in body["message"]


def test_more_time_than_the_budget_is_422(knowledge) -> None:
    response = call(knowledge, max_evaluation_seconds=1e-9)
    assert response.status_code == 422
    assert "more than 1e-09 s of work" in response.get_json()["message"]
