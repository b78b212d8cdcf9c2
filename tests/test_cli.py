"""The `cds-service` command line: evaluate (for knowledge authors), validate, serve start-up errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_service.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fhir_fixtures" / "scenarios"


def test_evaluate_prints_the_cards_of_a_request_file(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "--hook", "order-select", "--now", "2026-06-01T12:00:00Z",
                 "--request", str(FIXTURES / "folate-without-b12" / "b12-199-positive.request.json")])
    assert code == 0
    cards = json.loads(capsys.readouterr().out)["cards"]
    assert [(c["source"]["topic"]["code"], c["indicator"]) for c in cards] == [("folate-without-b12", "critical"), ("start-b12-replacement", "warning")]


def test_evaluate_explain_says_why_a_card_did_not_fire(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "--hook", "order-select", "--now", "2026-06-01T12:00:00Z", "--explain",
                 "--request", str(FIXTURES / "folate-without-b12" / "b12-200-boundary-negative.request.json")])
    assert code == 0
    output = capsys.readouterr().out
    assert '"cards": []' in output
    assert "== folate-without-b12: did not fire" in output
    assert "%b12Low = [false]" in output
    assert "%latestB12PgPerMl = [200]" in output


def test_evaluate_rejects_a_request_for_another_hook(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "--hook", "patient-view",
                 "--request", str(FIXTURES / "folate-without-b12" / "b12-199-positive.request.json")])
    assert code == 2
    assert "invalid request at hook" in capsys.readouterr().err


def test_validate_reports_the_services(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    output = capsys.readouterr().out
    assert "b12-neuropathy-order-sign (order-sign): folate-without-b12" in output


def test_serve_refuses_to_start_on_broken_knowledge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "PlanDefinition-broken.json").write_text("{")
    monkeypatch.setenv("CDS_KNOWLEDGE_DIR", str(tmp_path))
    assert main(["serve", "--port", "1"]) == 1
    assert "PlanDefinition-broken.json: not valid JSON" in capsys.readouterr().err


def test_evaluate_explain_lists_what_could_not_be_read(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "--hook", "order-select", "--now", "2026-06-01T12:00:00Z", "--explain",
                 "--request", str(FIXTURES / "order-not-checked" / "malformed-medication-positive.request.json")])
    assert code == 0
    out = capsys.readouterr().out
    response = json.loads(out[: out.index("\n}\n") + 2])
    assert response["extension"]["org.example.b12cds.unreadable"] == [
        {"resourceType": "MedicationRequest", "id": "draft-0", "element": "medicationCodeableConcept", "issue": "not a CodeableConcept object"}
    ]
    assert "== unreadable: 1 element(s) or resource(s), left out of the decision" in out
    assert "  - MedicationRequest/draft-0 medicationCodeableConcept: not a CodeableConcept object" in out
    assert "! order MedicationRequest/draft-0 could not be checked" in out


def test_evaluate_explain_says_when_everything_was_read(capsys: pytest.CaptureFixture[str]) -> None:
    main(["evaluate", "--hook", "order-select", "--now", "2026-06-01T12:00:00Z", "--explain",
          "--request", str(FIXTURES / "folate-without-b12" / "b12-199-positive.request.json")])
    assert "== unreadable: nothing" in capsys.readouterr().out
