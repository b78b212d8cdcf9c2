"""The resource reader: lenient in shape, strict in value, never silent."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.fhir.reader import NO_TIME_ZONE, ReadProblem, ResourceReader

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
NAMES = {
    "status", "code", "coding", "system", "display", "text", "value", "unit", "effective", "issued", "subject", "reference",
    "medication", "authoredOn", "dosageInstruction", "timing", "repeat", "frequency", "period", "periodUnit", "doseAndRate",
    "doseQuantity", "category", "clinicalStatus", "verificationStatus", "onset", "recordedDate", "contained", "birthDate",
}
READER = ResourceReader(
    ["Patient", "Observation", "Condition", "MedicationRequest", "MedicationAdministration", "ServiceRequest"], NAMES
)
SECRET = "Zebediah-Quux-1937"  # a value that must never appear in a problem


def read(resource: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    result = READER.read(resource)
    return result.resource, [problem.to_json() for problem in result.problems]


def b12(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": "b12", "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "2132-9", "display": "Cobalamin"}]},
        "effectiveDateTime": "2026-10-02T21:52:22Z",
        "valueQuantity": {"value": 160, "unit": "pg/mL", "system": "http://unitsofmeasure.org", "code": "pg/mL"},
        **extra,
    }


def r4_folic_acid_order() -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest", "id": "order-123", "status": "draft",
        "subject": {"reference": "Patient/p2"}, "authoredOn": "2026-12-01",
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                               "doseAndRate": [{"doseQuantity": {"value": 1, "system": "http://unitsofmeasure.org", "code": "{pill}"}}]}],
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "community"}]}],
        "medicationCodeableConcept": {"text": "Folic Acid 1 MG Oral Tablet",
                                      "coding": [{"system": RXNORM, "code": "310410", "display": "Folic Acid 1 MG Oral Tablet"}]},
    }


# --- R4 as it should be ---------------------------------------------------------------------


def test_a_valid_r4_resource_is_used_as_sent() -> None:
    sent = b12(note=[{"text": "not read"}], interpretation=[{"text": "L"}])
    result = READER.read(sent)
    assert result.problems == ()
    assert result.resource is sent  # valid in every element read: nothing to repair, nothing copied


def test_a_repaired_resource_is_a_copy_with_the_elements_read_only() -> None:
    sent = b12(note=[{"text": "not read"}], status=["final"])
    resource, problems = read(sent)
    assert problems == []
    assert resource == b12()  # note is not read by anything


def test_a_valid_fhir_type_the_knowledge_does_not_use_is_not_read_and_not_a_problem() -> None:
    assert read({"resourceType": "Encounter", "id": "e1", "status": "finished"}) == (None, [])


# --- shape: accepted deviations --------------------------------------------------------------


def test_one_object_where_r4_has_a_list_is_read_as_a_list() -> None:
    # What the CDS Hooks sandbox sends: MedicationRequest.category as one object.
    draft = r4_folic_acid_order()
    draft["category"] = draft["category"][0]
    resource, problems = read(draft)
    assert problems == []
    assert resource == r4_folic_acid_order()


def test_a_one_item_list_where_r4_has_one_value_is_read_as_that_value() -> None:
    observation = b12()
    observation["code"] = [observation["code"]]
    observation["status"] = ["final"]
    assert read(observation) == (b12(), [])


def test_several_values_where_r4_has_one_are_reported_and_not_guessed() -> None:
    observation = b12()
    observation["valueQuantity"] = [{"value": 160, "unit": "pg/mL"}, {"value": 900, "unit": "pg/mL"}]
    resource, problems = read(observation)
    assert resource is not None and "valueQuantity" not in resource
    assert problems == [{"resourceType": "Observation", "id": "b12", "element": "valueQuantity", "issue": "several values where FHIR R4 allows one"}]


def test_a_dstu2_medication_order_is_read_as_the_r4_medication_request() -> None:
    # The sandbox's DSTU2 mode, as sent: MedicationOrder, patient, dateWritten, periodUnits, a dose on the Dosage.
    dstu2 = {
        "resourceType": "MedicationOrder", "id": "order-123", "status": "draft",
        "patient": {"reference": "Patient/p2"}, "dateWritten": "2026-12-01",
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnits": "d"}},
                               "doseQuantity": {"value": 1, "system": "http://unitsofmeasure.org", "code": "{pill}"}}],
        "category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "community"}]},
        "medicationCodeableConcept": r4_folic_acid_order()["medicationCodeableConcept"],
    }
    result = READER.read(dstu2)
    assert result.problems == ()
    assert result.resource == r4_folic_acid_order()
    assert result.source_type == "MedicationOrder"


def test_dstu2_and_stu3_conditions_are_read_as_r4() -> None:
    dstu2 = {"resourceType": "Condition", "id": "c1", "patient": {"reference": "Patient/p"}, "clinicalStatus": "active",
             "verificationStatus": "confirmed", "dateRecorded": "2020-11-02", "category": {"text": "diagnosis"},
             "code": {"coding": [{"system": "http://snomed.info/sct", "code": "302226006"}]}}
    stu3 = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p"}, "clinicalStatus": "active",
            "verificationStatus": "unknown", "assertedDate": "2020-11-02",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "302226006"}]}}
    resource, problems = read(dstu2)
    assert problems == []
    assert resource is not None
    assert resource["clinicalStatus"] == {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}
    assert resource["verificationStatus"]["coding"][0]["code"] == "confirmed"
    assert resource["recordedDate"] == "2020-11-02" and resource["subject"] == {"reference": "Patient/p"}
    assert resource["category"] == [{"text": "diagnosis"}]
    resource, problems = read(stu3)
    assert problems == [] and resource is not None
    assert resource["verificationStatus"]["coding"][0]["code"] == "unconfirmed"  # STU3 'unknown' is R4 'unconfirmed'
    assert resource["recordedDate"] == "2020-11-02"


def test_an_stu3_procedure_request_is_read_as_a_service_request() -> None:
    resource, problems = read({"resourceType": "ProcedureRequest", "id": "s1", "status": "active", "subject": {"reference": "Patient/p"},
                               "code": {"coding": [{"system": LOINC, "code": "2132-9"}]}, "authoredOn": "2026-01-02"})
    assert problems == []
    assert resource == {"resourceType": "ServiceRequest", "id": "s1", "status": "active", "subject": {"reference": "Patient/p"},
                        "code": {"coding": [{"system": LOINC, "code": "2132-9"}]}, "authoredOn": "2026-01-02"}


def test_the_r4_name_wins_over_an_older_name_for_the_same_element() -> None:
    draft = dict(r4_folic_acid_order(), dateWritten="1999-01-01")
    assert read(draft) == (r4_folic_acid_order(), [])


# --- values: strict ---------------------------------------------------------------------------


@pytest.mark.parametrize("element, value, issue", [
    ("effectiveDateTime", "2026-02-30", "not a valid dateTime (no such day)"),
    ("effectiveDateTime", "yesterday", "not a valid dateTime"),
    ("effectiveDateTime", 20261002, "not a valid dateTime"),
    ("issued", "2026-10-02", "not a valid instant"),
    ("status", "Final", "not one of the codes FHIR R4 allows here"),
    ("status", "final ", "not a valid code"),
])
def test_an_invalid_value_is_dropped_and_reported_by_element(element: str, value: Any, issue: str) -> None:
    resource, problems = read(b12(**{element: value}))
    assert resource is not None and element not in resource
    assert resource["valueQuantity"]["value"] == 160  # the rest of the resource is read
    assert problems == [{"resourceType": "Observation", "id": "b12", "element": element, "issue": issue}]


@pytest.mark.parametrize("quantity, element, issue", [
    ({"value": "160", "unit": "pg/mL"}, "valueQuantity.value", "not a decimal number"),
    ({"value": True, "unit": "pg/mL"}, "valueQuantity.value", "not a decimal number"),
    ({"value": 160, "unit": ""}, "valueQuantity.unit", "an empty string"),
    ({"value": 160, "code": " pg/mL"}, "valueQuantity.code", "not a valid code"),
    ({"value": 160, "system": "http://unitsofmeasure.org ", "code": "pg/mL"}, "valueQuantity.system", "not a valid uri"),
])
def test_quantities_are_checked_part_by_part(quantity: dict, element: str, issue: str) -> None:
    resource, problems = read(b12(valueQuantity=quantity))
    assert problems == [{"resourceType": "Observation", "id": "b12", "element": element, "issue": issue}]
    assert resource is not None and element.split(".")[1] not in resource["valueQuantity"]


def test_a_date_time_without_a_zone_is_kept_as_utc_and_reported() -> None:
    resource, problems = read(b12(effectiveDateTime="2026-10-02T21:52:22"))
    assert resource is not None and resource["effectiveDateTime"] == "2026-10-02T21:52:22"
    assert problems == [{"resourceType": "Observation", "id": "b12", "element": "effectiveDateTime", "issue": NO_TIME_ZONE}]


def test_leap_days_are_real_days_only_in_leap_years() -> None:
    assert read(b12(effectiveDateTime="2024-02-29"))[1] == []
    assert read(b12(effectiveDateTime="2026-02-29"))[1][0]["issue"] == "not a valid dateTime (no such day)"


def test_two_types_for_one_choice_element_are_both_dropped_and_reported() -> None:
    resource, problems = read(b12(valueString="low"))
    assert resource is not None and "valueQuantity" not in resource and "valueString" not in resource
    assert problems == [{"resourceType": "Observation", "id": "b12", "element": "value[x]",
                         "issue": "more than one type given for a single choice element"}]


def test_a_complex_element_that_is_not_an_object_is_reported() -> None:
    resource, problems = read(b12(code="2132-9"))
    assert resource is not None and "code" not in resource
    assert problems == [{"resourceType": "Observation", "id": "b12", "element": "code", "issue": "not a CodeableConcept object"}]


def test_an_invalid_id_is_reported_without_its_value_and_the_resource_still_read() -> None:
    resource, problems = read(b12(id=f"{SECRET} with spaces"))
    assert resource is not None and "id" not in resource and resource["status"] == "final"
    assert problems == [{"resourceType": "Observation", "element": "id", "issue": "not a valid FHIR id"}]


@pytest.mark.parametrize("raw, expected", [
    ("not an object", {"resourceType": "(unknown)", "issue": "not a JSON object"}),
    ({"id": "x"}, {"resourceType": "(unknown)", "id": "x", "element": "resourceType", "issue": "resourceType is missing"}),
    ({"resourceType": f"Observation\n{SECRET}"}, {"resourceType": "(unknown)", "element": "resourceType",
                                                 "issue": "resourceType is not a FHIR type name"}),
    ({"resourceType": "ProcedureRequestX", "id": "1"}, {"resourceType": "ProcedureRequestX", "id": "1",
                                                       "issue": "not a FHIR resource type this service can read"}),
])
def test_what_is_not_a_readable_resource_is_reported(raw: Any, expected: dict) -> None:
    assert read(raw) == (None, [expected])


def test_contained_resources_are_read_and_their_problems_located() -> None:
    draft = r4_folic_acid_order()
    del draft["medicationCodeableConcept"]
    draft["medicationReference"] = {"reference": "#m"}
    draft["contained"] = [
        {"resourceType": "Medication", "id": "m", "code": {"coding": [{"system": RXNORM, "code": "310410"}]}},
        {"resourceType": "Medication", "id": "n", "code": {"coding": [{"system": RXNORM, "code": 310410}]}},
    ]
    resource, problems = read(draft)
    assert resource is not None
    assert resource["contained"][0] == {"resourceType": "Medication", "id": "m", "code": {"coding": [{"system": RXNORM, "code": "310410"}]}}
    assert problems == [{"resourceType": "MedicationRequest", "id": "order-123", "element": "contained[1].code.coding[0].code",
                         "issue": "not a valid code"}]


def test_no_problem_ever_carries_a_value_from_the_resource() -> None:
    poisoned = b12(id=SECRET + " x", status=SECRET, effectiveDateTime=SECRET, valueQuantity={"value": SECRET, "unit": 7},
                   code={"coding": [{"system": SECRET + " x", "code": SECRET + "  y"}]}, subject={"reference": 5})
    problems = READER.read(poisoned).problems
    assert len(problems) == 8
    assert SECRET not in json.dumps([problem.to_json() for problem in problems])
    assert all(SECRET not in problem.describe() for problem in problems)


# --- the fast path (msgspec) and the lenient path agree ------------------------------------------

FIXTURES = Path(__file__).resolve().parents[2] / "fhir_fixtures"


def _fixture_resources() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("resourceType"), str) and value["resourceType"] != "Bundle":
                found.append(value)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for path in sorted(FIXTURES.rglob("*.request.json")):
        walk(json.loads(path.read_text(encoding="utf-8")))
    return found


def _pruned(value: Any, type_name: str) -> Any:
    """``value`` with only the elements the reader's plan reads (what the lenient path keeps)."""
    if isinstance(value, list):
        return [_pruned(item, type_name) for item in value]
    if not isinstance(value, dict):
        return value
    plan = READER._plan(type_name)
    kept = {key: _pruned(item, plan[key].type) for key, item in value.items() if key in plan}
    if "resourceType" in value:
        kept = {"resourceType": value["resourceType"], **({"id": value["id"]} if "id" in value else {}), **kept}
    return kept


def test_what_the_fast_path_accepts_the_lenient_path_reads_unchanged_and_without_a_problem() -> None:
    from cds_service.fhir.reader import _Context

    resources = _fixture_resources()
    assert len(resources) > 1000
    accepted = 0
    for resource in resources:
        resource_type = resource["resourceType"]
        if resource_type not in READER.resource_types or not READER._fast.accepts(resource, resource_type):
            continue
        accepted += 1
        problems: list[ReadProblem] = []
        lenient = {"resourceType": resource_type, **({"id": resource["id"]} if "id" in resource else {})}
        lenient.update(_Context(READER, resource_type, resource.get("id"), problems).complex(resource, resource_type, ""))
        assert problems == [], resource.get("id")
        assert lenient == _pruned(resource, resource_type), resource.get("id")
    assert accepted > 0.9 * len(resources)


def test_the_fast_path_declines_every_kind_of_problem() -> None:
    declined = [b12(status="Final"), b12(effectiveDateTime="2026-02-29"), b12(valueString="x"), b12(code=[b12()["code"]]),
                b12(valueQuantity={"value": "1"}), b12(id="a b"), dict(r4_folic_acid_order(), dateWritten="2026-01-01"),
                dict(r4_folic_acid_order(), category=r4_folic_acid_order()["category"][0])]
    for resource in declined:
        assert not READER._fast.accepts(resource, resource["resourceType"])
    assert READER._fast.accepts(b12(), "Observation") and READER._fast.accepts(r4_folic_acid_order(), "MedicationRequest")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(sorted(NAMES | {"resourceType", "id", "periodUnits", "dateWritten", "patient", "valueString"})), children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.dictionaries(st.sampled_from(sorted(NAMES | {"id"})), JSON, max_size=8),
       resource_type=st.sampled_from(["Observation", "MedicationRequest", "MedicationOrder", "Condition", "Patient", "Foo", 3, None, {"a": 1}, ["Observation"]]))
def test_the_reader_never_raises_and_its_output_only_holds_checked_values(body: dict, resource_type: Any) -> None:
    raw = dict(body, resourceType=resource_type)
    result = READER.read(copy.deepcopy(raw))
    if result.resource is not None:
        # What was read is itself readable without a single problem, and reads the same again.
        again = READER.read(result.resource)
        assert again.problems == ()
        assert again.resource == result.resource


def test_contained_resources_cannot_nest_however_deep_they_are_sent() -> None:
    deepest: dict[str, Any] = {"resourceType": "Medication", "id": "m0"}
    for level in range(1, 400):  # about 800 JSON levels: under orjson's limit, over Python's recursion limit if followed
        deepest = {"resourceType": "Medication", "id": f"m{level}", "contained": [deepest]}
    draft = dict(r4_folic_acid_order(), contained=[deepest])
    resource, problems = read(draft)
    assert resource is not None and resource["contained"][0]["id"] == "m399"
    assert "contained" not in resource["contained"][0]
    assert problems == [{"resourceType": "MedicationRequest", "id": "order-123", "element": "contained[0].contained",
                         "issue": "a contained resource cannot contain resources"}]


@pytest.mark.parametrize("reference, readable", [
    ("Patient/p2", True), ("Patient/p2/_history/3", True), ("urn:uuid:9e8ba712-5bbf-4e3c-8946-b66032309cfc", True),
    ("https://ehr.example/fhir/Patient/1", True), ("#m1", True),
    ("p2", False), ("Patient/", False), ("patient/p2", False), ("Patient/p 2", False), ("", False),
])
def test_references_are_checked(reference: str, readable: bool) -> None:
    resource, problems = read(b12(subject={"reference": reference}))
    assert resource is not None
    if readable:
        assert problems == [] and resource["subject"] == {"reference": reference}
    else:
        assert [p["element"] for p in problems] == ["subject.reference"]
        assert READER._fast.accepts(b12(subject={"reference": reference}), "Observation") is False
