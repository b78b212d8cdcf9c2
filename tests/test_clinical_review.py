"""Two clinicians' held-out patients, written from RULES.md before anyone ran them (2026-12-02).

Each file holds the chart, the hook, the clock and the reviewer's expected cards. Every card
must match (recommendation and indicator), no recommendation in ``mustNotFire`` may fire, and
each ``mustMention`` fragment must be in the card's summary or detail (case-insensitive). Where
the service deliberately differs, ``disagreements.json`` says what it gives instead and why.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cds_service.fhir.client import FhirClient
from cds_service.pipeline import decide
from cds_service.protocol.models import HookRequest

REVIEW = Path(__file__).resolve().parents[1] / "fhir_fixtures" / "clinical-review"
PATIENTS = sorted(REVIEW.glob("*/[0-9][0-9]-*.json"))  # one folder per reviewer
DISAGREEMENTS = json.loads((REVIEW / "disagreements.json").read_text(encoding="utf-8"))["cases"]
PREFETCH_KEYS = {"Observation": "observations", "Condition": "conditions", "MedicationRequest": "medicationRequests",
                 "MedicationAdministration": "medicationAdministrations", "Procedure": "procedures",
                 "ServiceRequest": "serviceRequests"}


def hook_request(review: dict[str, Any], name: str) -> dict[str, Any]:
    patient = next(r for r in review["resources"] if r["resourceType"] == "Patient")
    prefetch: dict[str, Any] = {"patient": patient}
    for resource_type, key in PREFETCH_KEYS.items():
        found = [r for r in review["resources"] if r["resourceType"] == resource_type]
        prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "total": len(found),
                         "entry": [{"fullUrl": f"https://ehr.example.org/fhir/{resource_type}/{r['id']}", "resource": r} for r in found]}
    context: dict[str, Any] = {"userId": "Practitioner/pr-1", "patientId": patient["id"]}
    drafts = review.get("draftOrders", [])
    if review["hook"] != "patient-view":
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": d} for d in drafts]}
    if review["hook"] == "order-select":
        context["selections"] = review.get("selections") or [f"{d['resourceType']}/{d['id']}" for d in drafts[:1]]
    return {"hook": review["hook"], "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            "fhirServer": "https://ehr.example.org/fhir", "context": context, "prefetch": prefetch}


def test_the_review_is_there() -> None:
    assert len(PATIENTS) >= 20
    assert set(DISAGREEMENTS) <= {_name(path) for path in PATIENTS}


def _name(path: Path) -> str:
    return path.relative_to(REVIEW).as_posix()


@pytest.mark.parametrize("path", PATIENTS, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_reviewed_patient(path: Path, knowledge) -> None:
    review = json.loads(path.read_text(encoding="utf-8"))
    request = HookRequest.from_json(hook_request(review, path.name))
    service = knowledge.service_for_hook(review["hook"])
    now = datetime.fromisoformat(review["now"].replace("Z", "+00:00"))
    decision = decide(knowledge, service, request, FhirClient(), now)
    got = sorted([card.recommendation.id, card.indicator] for card in decision.cards)
    expected = sorted([card["topic"], card["indicator"]] for card in review["expected"]["cards"])
    if _name(path) in DISAGREEMENTS:
        expected = sorted(DISAGREEMENTS[_name(path)]["expected_by_service"])
    assert got == expected, review["expected"].get("rationale", "")
    fired = {card.recommendation.id for card in decision.cards}
    agreed_to_differ = {topic for topic, _ in expected}
    assert fired.isdisjoint(set(review["expected"].get("mustNotFire", [])) - agreed_to_differ)
    texts = {card.recommendation.id: (card.summary + "\n" + card.detail).casefold() for card in decision.cards}
    for card in review["expected"]["cards"]:
        for fragment in card.get("mustMention", []):
            if card["topic"] in texts:
                assert fragment.casefold() in texts[card["topic"]], f"{card['topic']}: {fragment!r} not in the card"
