"""The guideline coverage table stays true: every recommendation it names exists and is tested."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = (ROOT / "docs" / "coverage.md").read_text()
SCENARIOS = ROOT / "fhir_fixtures" / "scenarios"


def test_every_recommendation_is_in_the_coverage_table_and_vice_versa(knowledge) -> None:
    named = set(re.findall(r"\| `([a-z0-9-]+)`(?: \(|,| \|)", TABLE))
    assert named == set(knowledge.recommendations)


def test_every_plan_definition_and_fixture_folder_in_the_table_exists() -> None:
    for file_name in set(re.findall(r"`(PlanDefinition-[a-z0-9-]+\.json)`", TABLE)):
        assert (ROOT / "plan_definitions" / file_name).is_file(), file_name
    for folder in set(re.findall(r"`([a-z0-9][a-z0-9./-]*)/`", TABLE)):
        expected = [json.loads(p.read_text()) for p in (SCENARIOS / folder).glob("*.expected.json")]
        assert any(e["cards"] for e in expected), f"{folder}: no positive case"
        assert any(not any(c["topic"] == folder for c in e["cards"]) for e in expected), f"{folder}: no negative case"
