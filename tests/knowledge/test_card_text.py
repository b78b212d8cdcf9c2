"""What a clinician reads on a card names its sources in words and orders as they stand (RULES.md rev)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

KNOWLEDGE = Path(__file__).resolve().parents[2] / "plan_definitions"
CARD_TEXT_KEYS = ("title", "description", "textEquivalent", "display")
# A bare "[n]" into a reference list the reader cannot see, the seed, or an internal file.
UNFOLLOWABLE = re.compile(r"\[\d+(?:,\s*\d+)*\]|\bseed\b|\b[\w-]+\.(?:md|json|txt)\b", re.IGNORECASE)


def _card_texts(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in CARD_TEXT_KEYS and isinstance(value, str):
                yield f"{path}.{key}", value
            yield from _card_texts(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _card_texts(item, f"{path}[{index}]")


def _plan_definitions() -> list[Path]:
    return sorted(KNOWLEDGE.glob("PlanDefinition-*.json"))


@pytest.mark.parametrize("path", _plan_definitions(), ids=lambda p: p.stem)
def test_card_text_cites_sources_by_name(path: Path) -> None:
    resource = json.loads(path.read_text())
    # Everything under action becomes card text, suggestion labels or links.
    texts = list(_card_texts(resource.get("action", []), "action")) + list(_card_texts(resource.get("relatedArtifact", []), "relatedArtifact"))
    assert texts, "no card text found"
    bad = [(where, UNFOLLOWABLE.search(text).group(0)) for where, text in texts if UNFOLLOWABLE.search(text)]  # type: ignore[union-attr]
    assert bad == [], bad


def test_the_checker_finds_what_it_looks_for() -> None:
    for text in ("lifelong therapy (guideline [1, 2])", "see seed [4]", "(clinical-knowledge.md s8)"):
        assert UNFOLLOWABLE.search(text), text
    assert not UNFOLLOWABLE.search("(BSH 2014; BNF; US FDA cyanocobalamin label)")


@pytest.mark.parametrize("path", sorted(KNOWLEDGE.glob("ActivityDefinition-hydroxocobalamin-*.json")), ids=lambda p: p.stem)
def test_suggested_injections_carry_coded_route_and_dose(path: Path) -> None:
    for dosage in json.loads(path.read_text())["dosage"]:
        assert {"system": "http://snomed.info/sct", "code": "78421000", "display": "Intramuscular route"} in dosage["route"]["coding"]
        assert dosage["doseAndRate"][0]["doseQuantity"] == {"value": 1, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}
