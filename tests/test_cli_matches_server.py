"""`cds-service evaluate` and the HTTP service give the same answer on every fixture: one pipeline.

Each fixture pair goes once through the server (Flask, authentication off, a first call for that
patient) and once through the command line, in process; the two response bodies must be equal,
cards, uuids and the unreadable-data extension included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_service.app import create_app
from cds_service.cli import main

from .security.issuer import insecure_settings
from .support.scenarios import SCENARIO_DIR, Scenario, load_scenarios

SCENARIOS = load_scenarios()


@pytest.fixture(scope="module")
def server(knowledge, tmp_path_factory: pytest.TempPathFactory):
    clock = {"now": SCENARIOS[0].now}
    app = create_app(insecure_settings(state_dir=tmp_path_factory.mktemp("state")), knowledge=knowledge, clock=lambda: clock["now"])
    return app.test_client(), clock


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_the_command_line_answers_as_the_server_does(scenario: Scenario, server, capsys: pytest.CaptureFixture[str]) -> None:
    client, clock = server
    clock["now"] = scenario.now
    response = client.post(f"/cds-services/{scenario.expected['service']}", json=scenario.request)
    assert response.status_code == 200, response.get_json()
    request_file = SCENARIO_DIR / f"{scenario.name}.request.json"
    assert request_file.is_file()
    code = main(["evaluate", "--hook", scenario.request["hook"], "--now", scenario.expected["now"], "--request", str(request_file)])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out) == response.get_json()


def test_the_comparison_covers_every_fixture() -> None:
    assert len(SCENARIOS) == len(list(Path(SCENARIO_DIR).rglob("*.request.json"))) > 300
