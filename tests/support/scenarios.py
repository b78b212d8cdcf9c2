"""Load fixture pairs and compare a CDS Hooks response with the expected cards."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_DIR = ROOT / "fhir_fixtures" / "scenarios"


@dataclass(frozen=True)
class Scenario:
    name: str
    request: dict[str, Any]
    expected: dict[str, Any]

    @property
    def now(self) -> datetime:
        return datetime.fromisoformat(self.expected["now"].replace("Z", "+00:00"))


def load_scenarios() -> list[Scenario]:
    scenarios = []
    for request_file in sorted(SCENARIO_DIR.rglob("*.request.json")):
        expected_file = request_file.with_name(request_file.name.replace(".request.json", ".expected.json"))
        name = f"{request_file.parent.relative_to(SCENARIO_DIR).as_posix()}/{request_file.name.removesuffix('.request.json')}"
        scenarios.append(Scenario(name, json.loads(request_file.read_text()), json.loads(expected_file.read_text())))
    return scenarios


def assert_cards_match(cards: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    got = sorted((card["source"]["topic"]["code"], card["indicator"]) for card in cards)
    want = sorted((card["topic"], card["indicator"]) for card in expected)
    assert got == want, f"cards {got} != expected {want}"
    for wanted in expected:
        card = next(c for c in cards if c["source"]["topic"]["code"] == wanted["topic"])
        if "summary" in wanted:
            assert card["summary"] == wanted["summary"]
        for fragment in wanted.get("detailContains", []):
            assert fragment in card.get("detail", ""), f"{fragment!r} not in detail:\n{card.get('detail')}"
        if "suggestions" in wanted:
            assert [s["label"] for s in card.get("suggestions", [])] == [s["label"] for s in wanted["suggestions"]]
            for suggestion, wanted_suggestion in zip(card.get("suggestions", []), wanted["suggestions"]):
                assert [_action_summary(a) for a in suggestion["actions"]] == wanted_suggestion["actions"]
        if "overrideReasons" in wanted:
            assert [reason["code"] for reason in card.get("overrideReasons", [])] == wanted["overrideReasons"]


def _action_summary(action: dict[str, Any]) -> dict[str, Any]:
    if action["type"] == "delete":
        return {"type": "delete", "resourceId": action.get("resourceId")}
    resource = action.get("resource", {})
    concept = resource.get("medicationCodeableConcept") or resource.get("code") or {}
    codes = [coding.get("code") for coding in concept.get("coding", [])]
    return {"type": action["type"], "resourceType": resource.get("resourceType"), "code": codes[0] if codes else None}
