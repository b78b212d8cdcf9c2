"""Hook response and discovery response checks (CDS Hooks 2.0, spec file sections 1 and 4)."""

from __future__ import annotations

import copy

import pytest

from cds_service.protocol.validation import discovery_errors, response_errors

OVERRIDE_SYSTEM = "https://b12.example.org/fhir/CodeSystem/override-reason"

FULL_CARD = {
    "uuid": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
    "summary": "Folic acid ordered without vitamin B12 for a patient with B12 deficiency neuropathy",
    "detail": "Serum B12 **148 ng/L** on 2026-03-02. Folate alone can mask the anaemia while neuropathy progresses.",
    "indicator": "critical",
    "source": {
        "label": "B12 deficiency neuropathy pathway",
        "url": "https://b12.example.org/guideline",
        "icon": "https://b12.example.org/img/icon-100px.png",
        "topic": {"system": "http://snomed.info/sct", "code": "190634004", "display": "Vitamin B12 deficiency"},
    },
    "suggestions": [
        {
            "label": "Start hydroxocobalamin 1 mg IM on alternate days",
            "uuid": "e56e1945-20b3-4393-8503-a1a20fd73152",
            "isRecommended": True,
            "actions": [
                {
                    "type": "create",
                    "description": "Order hydroxocobalamin 1 mg IM alternate days",
                    "resource": {
                        "resourceType": "MedicationRequest",
                        "status": "draft",
                        "intent": "proposal",
                        "medicationCodeableConcept": {"text": "Hydroxocobalamin 1 mg/mL injection"},
                        "subject": {"reference": "Patient/smart-1288992"},
                    },
                },
                {
                    "type": "delete",
                    "description": "Remove the folic acid order",
                    "resourceId": "MedicationRequest/request-123",
                },
            ],
        }
    ],
    "selectionBehavior": "at-most-one",
    "overrideReasons": [
        {"system": OVERRIDE_SYSTEM, "code": "already-treated", "display": "B12 already replaced elsewhere"},
        {"system": OVERRIDE_SYSTEM, "code": "patient-refused", "display": "Patient declined injections"},
    ],
    "links": [
        {"label": "Guideline", "url": "https://b12.example.org/guideline", "type": "absolute"},
        {
            "label": "B12 dosing app",
            "url": "https://apps.example.org/b12/launch",
            "type": "smart",
            "appContext": "{\"session\":3456356}",
            "autolaunchable": False,
        },
    ],
}

# S2 "CDS Service Response" example card (minimal shape).
SPEC_CARD = {
    "summary": "Example Card",
    "indicator": "info",
    "detail": "This is an example card.",
    "source": {"label": "Static CDS Service Example", "url": "https://example.com", "icon": "https://example.com/img/icon-100px.png"},
    "links": [{"label": "Google", "url": "https://google.com", "type": "absolute"}],
}


def response(*cards: dict) -> dict:
    return {"cards": [copy.deepcopy(card) for card in cards]}


def mentions(errors: list[str], path: str) -> bool:
    return any(error.startswith(f"{path}: ") for error in errors)


# ------------------------------------------------------------------ valid responses


def test_full_card_is_valid() -> None:
    assert response_errors(response(FULL_CARD)) == []


def test_spec_example_and_empty_cards_are_valid() -> None:
    assert response_errors(response(SPEC_CARD, FULL_CARD)) == []
    assert response_errors({"cards": []}) == []


def test_system_actions_and_extension_are_valid() -> None:
    body = {
        "cards": [],
        "systemActions": [
            {"type": "update", "description": "Annotate order", "resource": {"resourceType": "ServiceRequest", "id": "example-request-id", "status": "draft"}}
        ],
        "extension": {"com.example.trace": "abc"},
    }
    assert response_errors(body) == []


def test_summary_of_139_characters_is_valid() -> None:
    card = copy.deepcopy(SPEC_CARD)
    card["summary"] = "s" * 139
    assert response_errors(response(card)) == []


# ------------------------------------------------------------------ JSON hygiene


@pytest.mark.parametrize(
    ("path", "bad", "expected"),
    [
        (("detail",), None, "null is not allowed"),
        (("detail",), "", "empty string is not allowed"),
        (("links",), [], "empty array is not allowed"),
        (("source", "topic"), {}, "empty object is not allowed"),
        (("uuid",), None, "null is not allowed"),
        (("suggestions", 0, "actions", 0, "resource", "subject"), None, "null is not allowed"),
        (("suggestions", 0, "actions", 0, "resource", "dosageInstruction"), [], "empty array is not allowed"),
        (("suggestions", 0, "actions", 0, "resource", "note"), [{}], "empty object is not allowed"),
        (("suggestions", 0, "actions", 0, "resource", "subject", "display"), "", "empty string is not allowed"),
        (("extension",), {"com.example": {"nested": None}}, "null is not allowed"),
    ],
)
def test_hygiene_violations_are_reported_with_their_path(path: tuple, bad: object, expected: str) -> None:
    card = copy.deepcopy(FULL_CARD)
    target = card
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = bad
    errors = response_errors(response(card))
    dotted = ".".join(["cards", "0", *map(str, path)])
    if path[-1] == "note":
        dotted += ".0"
    elif path[-1] == "extension":
        dotted += ".com.example.nested"
    assert any(error.startswith(f"{dotted}: {expected}") for error in errors), errors


def test_null_top_level_member_is_reported() -> None:
    errors = response_errors({"cards": [], "systemActions": None})
    assert "systemActions: null is not allowed (omit the member instead)" in errors


def test_empty_system_actions_is_not_exempt() -> None:
    errors = response_errors({"cards": [], "systemActions": []})
    assert mentions(errors, "systemActions")


def test_non_finite_number_is_reported() -> None:
    card = copy.deepcopy(FULL_CARD)
    card["suggestions"][0]["actions"][0]["resource"]["dosageInstruction"] = [{"doseAndRate": [{"doseQuantity": {"value": float("nan")}}]}]
    errors = response_errors(response(card))
    assert mentions(errors, "cards.0.suggestions.0.actions.0.resource.dosageInstruction.0.doseAndRate.0.doseQuantity.value")


# ------------------------------------------------------------------ schema rules


def test_summary_of_140_characters_is_rejected() -> None:
    card = copy.deepcopy(SPEC_CARD)
    card["summary"] = "s" * 140
    errors = response_errors(response(card))
    assert "cards.0.summary: must be at most 139 characters long" in errors


def test_suggestions_require_selection_behavior() -> None:
    card = copy.deepcopy(FULL_CARD)
    del card["selectionBehavior"]
    errors = response_errors(response(card))
    assert "cards.0.selectionBehavior: is required when 'suggestions' is present" in errors


def test_selection_behavior_enum() -> None:
    card = copy.deepcopy(FULL_CARD)
    card["selectionBehavior"] = "exactly-one"
    assert mentions(response_errors(response(card)), "cards.0.selectionBehavior")


def test_override_reason_requires_display() -> None:
    card = copy.deepcopy(FULL_CARD)
    del card["overrideReasons"][1]["display"]
    errors = response_errors(response(card))
    assert errors == ["cards.0.overrideReasons.1.display: is required"]


@pytest.mark.parametrize("name", ["code", "system"])
def test_override_reason_requires_code_and_system(name: str) -> None:
    card = copy.deepcopy(FULL_CARD)
    del card["overrideReasons"][0][name]
    assert f"cards.0.overrideReasons.0.{name}: is required" in response_errors(response(card))


def test_topic_display_is_optional_but_code_is_not() -> None:
    card = copy.deepcopy(FULL_CARD)
    del card["source"]["topic"]["display"]
    assert response_errors(response(card)) == []
    del card["source"]["topic"]["code"]
    assert "cards.0.source.topic.code: is required" in response_errors(response(card))


def test_hard_stop_indicator_is_rejected() -> None:
    card = copy.deepcopy(FULL_CARD)
    card["indicator"] = "hard-stop"
    errors = response_errors(response(card))
    assert errors == ['cards.0.indicator: must be one of: "info", "warning", "critical"']


@pytest.mark.parametrize("name", ["summary", "indicator", "source"])
def test_card_required_members(name: str) -> None:
    card = copy.deepcopy(FULL_CARD)
    del card[name]
    assert f"cards.0.{name}: is required" in response_errors(response(card))


def test_source_requires_label() -> None:
    card = copy.deepcopy(SPEC_CARD)
    del card["source"]["label"]
    assert "cards.0.source.label: is required" in response_errors(response(card))


@pytest.mark.parametrize("name", ["url", "icon"])
def test_source_urls_must_be_absolute(name: str) -> None:
    card = copy.deepcopy(FULL_CARD)
    card["source"][name] = "/img/icon.png"
    assert f"cards.0.source.{name}: must be an absolute URL" in response_errors(response(card))


def test_suggestion_requires_label_and_boolean_is_recommended() -> None:
    card = copy.deepcopy(FULL_CARD)
    del card["suggestions"][0]["label"]
    card["suggestions"][0]["isRecommended"] = "yes"
    errors = response_errors(response(card))
    assert "cards.0.suggestions.0.label: is required" in errors
    assert "cards.0.suggestions.0.isRecommended: must be of type boolean, not string" in errors


def test_action_rules() -> None:
    card = copy.deepcopy(FULL_CARD)
    actions = card["suggestions"][0]["actions"]
    actions[0]["type"] = "insert"
    del actions[1]["description"]
    errors = response_errors(response(card))
    assert 'cards.0.suggestions.0.actions.0.type: must be one of: "create", "update", "delete"' in errors
    assert "cards.0.suggestions.0.actions.1.description: is required" in errors


def test_create_action_requires_a_resource_with_resource_type() -> None:
    card = copy.deepcopy(FULL_CARD)
    action = card["suggestions"][0]["actions"][0]
    del action["resource"]["resourceType"]
    assert "cards.0.suggestions.0.actions.0.resource.resourceType: is required" in response_errors(response(card))
    del action["resource"]
    assert "cards.0.suggestions.0.actions.0.resource: is required" in response_errors(response(card))


@pytest.mark.parametrize(("name", "bad"), [("type", "launch"), ("url", "guideline.html"), ("autolaunchable", "true")])
def test_link_rules(name: str, bad: str) -> None:
    card = copy.deepcopy(FULL_CARD)
    card["links"][1][name] = bad
    assert mentions(response_errors(response(card)), f"cards.0.links.1.{name}")


@pytest.mark.parametrize("name", ["label", "url", "type"])
def test_link_required_members(name: str) -> None:
    card = copy.deepcopy(FULL_CARD)
    del card["links"][0][name]
    assert f"cards.0.links.0.{name}: is required" in response_errors(response(card))


def test_misspelled_member_is_rejected() -> None:
    card = copy.deepcopy(FULL_CARD)
    card["selectionbehaviour"] = card.pop("selectionBehavior")
    errors = response_errors(response(card))
    assert "cards.0.selectionbehaviour: is not an allowed member" in errors


def test_response_shape() -> None:
    assert response_errors([]) == ["(root): hook response must be a JSON object"]
    assert response_errors({}) == ["cards: is required", "(root): empty object is not allowed (omit the member instead)"]
    assert "cards: must be of type array, not object" in response_errors({"cards": {}})


# ------------------------------------------------------------------ discovery

DISCOVERY = {
    "services": [
        {
            "hook": "patient-view",
            "title": "B12 deficiency neuropathy review",
            "description": "Flags untreated vitamin B12 deficiency with neuropathy when the chart is opened.",
            "id": "b12-patient-view",
            "prefetch": {
                "patient": "Patient/{{context.patientId}}",
                "b12": "Observation?patient={{context.patientId}}&code=http://loinc.org|2132-9&_sort=-date&_count=5",
            },
        },
        {
            "hook": "order-select",
            "title": "Folate without B12",
            "description": "Warns when folic acid is selected for a patient with B12 deficiency.",
            "id": "b12-order-select",
            "usageRequirements": "Requires access to Observation and MedicationRequest.",
        },
        {"hook": "order-sign", "description": "Re-checks B12 treatment at signing.", "id": "b12-order-sign"},
    ]
}


def test_discovery_is_valid() -> None:
    assert discovery_errors(copy.deepcopy(DISCOVERY)) == []


def test_empty_service_list_is_allowed() -> None:
    assert discovery_errors({"services": []}) == []


@pytest.mark.parametrize("name", ["hook", "description", "id"])
def test_discovery_required_members(name: str) -> None:
    body = copy.deepcopy(DISCOVERY)
    del body["services"][2][name]
    assert f"services.2.{name}: is required" in discovery_errors(body)


def test_discovery_hygiene() -> None:
    body = copy.deepcopy(DISCOVERY)
    body["services"][0]["title"] = None
    body["services"][1]["usageRequirements"] = ""
    body["services"][2]["prefetch"] = {}
    errors = discovery_errors(body)
    assert "services.0.title: null is not allowed (omit the member instead)" in errors
    assert "services.1.usageRequirements: empty string is not allowed (omit the member instead)" in errors
    assert "services.2.prefetch: empty object is not allowed (omit the member instead)" in errors


def test_prefetch_templates_must_be_strings() -> None:
    body = copy.deepcopy(DISCOVERY)
    body["services"][0]["prefetch"]["patient"] = {"url": "Patient/{{context.patientId}}"}
    assert "services.0.prefetch.patient: must be of type string, not object" in discovery_errors(body)


def test_service_id_must_be_url_safe() -> None:
    body = copy.deepcopy(DISCOVERY)
    body["services"][0]["id"] = "b12/patient view"
    assert mentions(discovery_errors(body), "services.0.id")


def test_discovery_shape() -> None:
    assert discovery_errors("services") == ["(root): discovery response must be a JSON object"]
    assert "services: is required" in discovery_errors({"cards": []})
    assert "cards: is not an allowed member" in discovery_errors({"services": [], "cards": []})
