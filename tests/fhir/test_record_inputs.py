"""PatientRecord named inputs: the code index selects exactly what a per-resource scan selects."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.fhir.record import PatientRecord
from cds_service.knowledge.model import DataRequirement
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
    record = PatientRecord.from_resources(resources)
    selected = record.input(DataRequirement("labs", "Observation", "code", LABS), TERMINOLOGY)
    assert ids(selected) == ["a", "c", "d", "f"]


def test_codings_without_a_usable_system_or_code_match_nothing() -> None:
    resources = [
        obs("no-system", (None, "2132-9")), obs("empty-code", (LOINC, "")), obs("number-code", (LOINC, 2132)),
        {"resourceType": "Observation", "id": "no-code", "status": "final", "code": {"text": "B12"}},
        {"resourceType": "Observation", "id": "coding-not-a-list", "status": "final", "code": {"coding": {"system": LOINC, "code": "2132-9"}}},
        obs("ok", (LOINC, "2132-9")),
    ]
    record = PatientRecord.from_resources(resources)
    assert ids(record.input(DataRequirement("labs", "Observation", "code", LABS), TERMINOLOGY)) == ["ok"]


def test_regex_families_and_exclusions_are_honoured() -> None:
    record = PatientRecord.from_resources([condition("c1", "G62.9"), condition("c2", "G62.1"), condition("c3", "G63"), condition("c4", "G62")])
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
    record = PatientRecord.from_resources(resources)
    selected = record.input(DataRequirement("b12", "MedicationRequest", "medication", DRUGS), TERMINOLOGY)
    assert ids(selected) == ["inline", "contained", "referenced"]


def test_invalid_resources_are_left_out_and_inputs_without_a_filter_take_every_valid_one() -> None:
    invalid = {"resourceType": "Observation", "id": "bad", "status": "final", "code": {"coding": [{"system": LOINC, "code": "2132-9"}]},
               "valueQuantity": {"value": "not a number"}}
    resources = [obs("a", (LOINC, "2132-9")), invalid, obs("b", (LOINC, "718-7"))]
    record = PatientRecord.from_resources(resources)
    assert ids(record.input(DataRequirement("labs", "Observation", "code", LABS), TERMINOLOGY)) == ["a"]
    assert ids(record.input(DataRequirement("all", "Observation"), TERMINOLOGY)) == ["a", "b"]


def test_an_unknown_value_set_fails_even_without_resources() -> None:
    record = PatientRecord.from_resources([])
    with pytest.raises(KeyError):
        record.input(DataRequirement("x", "Observation", "code", "http://example.org/ValueSet/unknown"), TERMINOLOGY)


def test_the_index_is_built_once_per_type_and_code_path() -> None:
    record = PatientRecord.from_resources([obs("a", (LOINC, "2132-9")), obs("b", (LOINC, "787-2"))])
    record.input(DataRequirement("one", "Observation", "code", LABS), TERMINOLOGY)
    index = record._code_index[("Observation", "code")]
    record.input(DataRequirement("two", "Observation", "code", LABS), TERMINOLOGY)
    assert record._code_index[("Observation", "code")] is index
    assert set(index) == {((LOINC, "2132-9"),), ((LOINC, "787-2"),)}


# --- validation results remembered across calls, by content ----------------------------------


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from cds_service.fhir import record as record_module

    record_module.clear_validation_cache()
    calls: list[str] = []
    real = record_module.validate_resource

    def counting(resource: Any) -> None:
        calls.append(resource.get("id"))
        real(resource)

    monkeypatch.setattr(record_module, "validate_resource", counting)
    yield calls
    record_module.clear_validation_cache()


def test_a_resource_sent_again_is_not_validated_again(counted: list[str]) -> None:
    requirement = DataRequirement("labs", "Observation", "code", LABS)
    for _ in range(3):  # three calls, each with freshly parsed JSON
        record = PatientRecord.from_resources([obs("a", (LOINC, "2132-9")), obs("b", (LOINC, "787-2"))])
        assert ids(record.input(requirement, TERMINOLOGY)) == ["a", "b"]
    assert counted == ["a", "b"]


def test_a_changed_resource_is_validated_again(counted: list[str]) -> None:
    requirement = DataRequirement("labs", "Observation", "code", LABS)
    first = obs("a", (LOINC, "2132-9"))
    changed = dict(first, valueQuantity={"value": "not a number"})
    assert ids(PatientRecord.from_resources([first]).input(requirement, TERMINOLOGY)) == ["a"]
    assert ids(PatientRecord.from_resources([changed]).input(requirement, TERMINOLOGY)) == []
    assert counted == ["a", "a"]


def test_a_remembered_invalid_resource_is_still_left_out_and_logged(counted: list[str], caplog: pytest.LogCaptureFixture) -> None:
    requirement = DataRequirement("labs", "Observation", "code", LABS)
    invalid = dict(obs("bad", (LOINC, "2132-9")), valueQuantity={"value": "not a number"})
    caplog.set_level("INFO", logger="cds_service.fhir.record")
    for _ in range(2):
        assert PatientRecord.from_resources([dict(invalid)]).input(requirement, TERMINOLOGY) == []
    assert counted == ["bad"]
    lines = [r.getMessage() for r in caplog.records if "not valid FHIR R4" in r.getMessage()]
    assert len(lines) == 2 and lines[0] == lines[1] and "valueQuantity" in lines[0]


def test_the_memory_is_bounded(counted: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from cds_service.fhir import record as record_module

    monkeypatch.setattr(record_module, "VALIDATION_CACHE_SIZE", 3)
    requirement = DataRequirement("labs", "Observation", "code", LABS)
    resources = [obs(f"o{i}", (LOINC, "2132-9")) for i in range(5)]
    PatientRecord.from_resources(resources).input(requirement, TERMINOLOGY)
    assert len(record_module._validation_cache) == 3
    PatientRecord.from_resources([dict(r) for r in resources]).input(requirement, TERMINOLOGY)
    assert counted == ["o0", "o1", "o2", "o3", "o4"] * 2  # least recently used first out
    assert len(record_module._validation_cache) == 3
