"""PatientRecord: resources read once (shape repaired, values checked, problems kept), and
named inputs whose code index selects exactly what a per-resource scan selects."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.fhir.reader import ResourceReader
from cds_service.knowledge.model import DataRequirement
from cds_service.knowledge.record import PatientRecord
from cds_service.knowledge.terminology import ValueSetIndex

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LABS = "http://example.org/ValueSet/labs"
DRUGS = "http://example.org/ValueSet/drugs"
FAMILY = "http://example.org/ValueSet/family"
TERMINOLOGY = ValueSetIndex.from_resources([
    {"resourceType": "ValueSet", "url": LABS, "status": "active",
     "compose": {"include": [{"system": LOINC, "concept": [{"code": "2132-9"}, {"code": "787-2"}]}]}},
    {"resourceType": "ValueSet", "url": DRUGS, "status": "active",
     "compose": {"include": [{"system": RXNORM, "concept": [{"code": "317106"}]}]}},
    {"resourceType": "ValueSet", "url": FAMILY, "status": "active",
     "compose": {"include": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "filter": [{"property": "code", "op": "regex", "value": "G62(\\.[0-9])?"}]}],
                 "exclude": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "concept": [{"code": "G62.1"}]}]}},
])


READER = ResourceReader(
    ["Observation", "Condition", "MedicationRequest"],
    {"status", "code", "coding", "system", "value", "unit", "medication", "contained", "reference", "subject"},
)


def record_of(resources: list[Any]) -> PatientRecord:
    return PatientRecord.read(resources, READER)


def obs(oid: str, *codes: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": system, "code": code} for system, code in codes]}}


def condition(cid: str, code: str) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}]}}


def med_request(mid: str, **medication: Any) -> dict[str, Any]:
    return {"resourceType": "MedicationRequest", "id": mid, "status": "active", "intent": "order",
            "subject": {"reference": "Patient/p"}, **medication}


def ids(resources: list) -> list[str]:
    return [r["id"] for r in resources]


def test_selection_keeps_arrival_order_across_code_groups() -> None:
    resources = [obs("a", (LOINC, "787-2")), obs("b", (LOINC, "718-7")), obs("c", (LOINC, "2132-9")),
                 obs("d", (LOINC, "787-2")), obs("e", ("http://other", "2132-9")), obs("f", (LOINC, "2132-9"), (LOINC, "787-2"))]
    record = record_of(resources)
    selected = record.input(DataRequirement("labs", "Observation", "code", LABS), TERMINOLOGY)
    assert ids(selected) == ["a", "c", "d", "f"]


def test_codings_without_a_usable_system_or_code_match_nothing() -> None:
    resources = [
        obs("no-system", (None, "2132-9")), obs("empty-code", (LOINC, "")), obs("number-code", (LOINC, 2132)),
        {"resourceType": "Observation", "id": "no-code", "status": "final", "code": {"text": "B12"}},
        obs("ok", (LOINC, "2132-9")),
    ]
    record = record_of(resources)
    assert ids(record.input(DataRequirement("labs", "Observation", "code", LABS), TERMINOLOGY)) == ["ok"]
    # Each unusable coding is reported with its element, never its value.
    assert sorted(p.element for p in record.problems) == ["code.coding[0].code", "code.coding[0].code"]


def test_one_object_where_r4_has_a_list_is_read_as_that_list() -> None:
    lenient = {"resourceType": "Observation", "id": "coding-not-a-list", "status": "final", "code": {"coding": {"system": LOINC, "code": "2132-9"}}}
    record = record_of([lenient])
    assert ids(record.input(DataRequirement("labs", "Observation", "code", LABS), TERMINOLOGY)) == ["coding-not-a-list"]
    assert record.problems == ()


def test_regex_families_and_exclusions_are_honoured() -> None:
    record = record_of([condition("c1", "G62.9"), condition("c2", "G62.1"), condition("c3", "G63"), condition("c4", "G62")])
    assert ids(record.input(DataRequirement("neuro", "Condition", "code", FAMILY), TERMINOLOGY)) == ["c1", "c4"]


def test_medication_inputs_follow_contained_and_record_references() -> None:
    concept = {"coding": [{"system": RXNORM, "code": "317106"}]}
    resources = [
        {"resourceType": "Medication", "id": "m1", "code": concept},
        med_request("inline", medicationCodeableConcept=concept),
        med_request("contained", contained=[{"resourceType": "Medication", "id": "x", "code": concept}], medicationReference={"reference": "#x"}),
        med_request("referenced", medicationReference={"reference": "Medication/m1"}),
        med_request("dangling", medicationReference={"reference": "Medication/nope"}),
        med_request("other", medicationCodeableConcept={"coding": [{"system": RXNORM, "code": "1"}]}),
    ]
    record = record_of(resources)
    selected = record.input(DataRequirement("b12", "MedicationRequest", "medication", DRUGS), TERMINOLOGY)
    assert ids(selected) == ["inline", "contained", "referenced"]


def test_an_unreadable_value_is_dropped_and_reported_and_the_resource_kept() -> None:
    unreadable = {"resourceType": "Observation", "id": "bad", "status": "final", "code": {"coding": [{"system": LOINC, "code": "2132-9"}]},
                  "valueQuantity": {"value": "not a number", "unit": "pg/mL"}}
    resources = [obs("a", (LOINC, "2132-9")), unreadable, obs("b", (LOINC, "718-7"))]
    record = record_of(resources)
    selected = record.input(DataRequirement("labs", "Observation", "code", LABS), TERMINOLOGY)
    assert ids(selected) == ["a", "bad"]
    assert selected[1]["valueQuantity"] == {"unit": "pg/mL"}  # the unit is there; the value could not be read
    assert ids(record.input(DataRequirement("all", "Observation"), TERMINOLOGY)) == ["a", "bad", "b"]
    assert [p.to_json() for p in record.problems] == [
        {"resourceType": "Observation", "id": "bad", "element": "valueQuantity.value", "issue": "not a decimal number"}
    ]


def test_an_unknown_value_set_fails_even_without_resources() -> None:
    record = record_of([])
    with pytest.raises(KeyError):
        record.input(DataRequirement("x", "Observation", "code", "http://example.org/ValueSet/unknown"), TERMINOLOGY)


def test_the_index_is_built_once_per_type_and_code_path() -> None:
    record = record_of([obs("a", (LOINC, "2132-9")), obs("b", (LOINC, "787-2"))])
    record.input(DataRequirement("one", "Observation", "code", LABS), TERMINOLOGY)
    index = record._code_index[("Observation", "code")]
    record.input(DataRequirement("two", "Observation", "code", LABS), TERMINOLOGY)
    assert record._code_index[("Observation", "code")] is index
    assert set(index) == {((LOINC, "2132-9"),), ((LOINC, "787-2"),)}
