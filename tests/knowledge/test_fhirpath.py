"""The FHIRPath layer: strict parsing, lazy variables, and the custom functions."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from cds_service.fhirpath import FhirPathSyntaxError, compile_expression, plain_list
from cds_service.knowledge.functions import (
    FunctionContext,
    build_function_table,
    parse_fhir_datetime,
)
from cds_service.knowledge.terminology import ValueSetIndex
from cds_service.knowledge.units import convert_quantity

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
VS = "http://example.org/ValueSet/b12"
TERMINOLOGY = ValueSetIndex.from_resources([{
    "resourceType": "ValueSet", "url": VS, "status": "active",
    "compose": {"include": [{"system": "http://loinc.org", "concept": [{"code": "2132-9"}]}]},
}])
MEDICATION = {"resourceType": "Medication", "id": "med-1", "code": {"coding": [{"system": "http://loinc.org", "code": "2132-9"}]}}


def evaluate(expression: str, variables: dict | None = None, root: dict | None = None) -> list:
    functions = build_function_table(FunctionContext(NOW, TERMINOLOGY, lambda ref: MEDICATION if ref == "Medication/med-1" else None))
    return plain_list(compile_expression(expression).evaluate(root or {}, variables or {}, functions))


@pytest.mark.parametrize("source", ["%a and and", "a b", "where(", "", "  "])
def test_syntax_errors_are_errors_not_silently_recovered(source: str) -> None:
    with pytest.raises(FhirPathSyntaxError):
        compile_expression(source)


def test_days_since_counts_calendar_days_to_the_evaluation_clock() -> None:
    assert evaluate("%d.daysSince()", {"d": "2026-03-02T23:59:00Z"}) == [91]
    assert evaluate("%d.daysSince()", {"d": "2026-03-01"}) == [92]
    assert evaluate("%d.daysSince()", {"d": "2026-06-01T00:00:01Z"}) == [0]
    assert evaluate("%d.daysSince()", {"d": "not a date"}) == []


def test_now_and_today_come_from_the_evaluation_clock_not_the_host() -> None:
    assert evaluate("now()")[0].startswith("2026-06-01T12:00")
    assert evaluate("today()") == ["2026-06-01"]


def test_latest_picks_the_most_recent_by_clinical_date() -> None:
    observations = [
        {"resourceType": "Observation", "id": "old", "effectiveDateTime": "2025-01-01T00:00:00Z"},
        {"resourceType": "Observation", "id": "new", "effectivePeriod": {"start": "2026-05-01T00:00:00+02:00"}},
        {"resourceType": "Observation", "id": "undated"},
    ]
    assert [o["id"] for o in evaluate("%obs.latest()", {"obs": observations})] == ["new"]
    assert evaluate("%obs.latest()", {"obs": []}) == []


def test_quantity_in_converts_within_a_dimension_only() -> None:
    assert evaluate("%q.quantityIn('pg/mL')", {"q": {"value": 250, "code": "ng/L"}}) == [Decimal(250)]
    assert evaluate("%q.quantityIn('umol/L')", {"q": {"value": 450, "code": "nmol/L"}}) == [Decimal("0.45")]
    assert evaluate("%q.quantityIn('pg/mL')", {"q": {"value": 147, "code": "pmol/L"}}) == []
    assert convert_quantity(Decimal("0.5"), "mg", "mcg") == Decimal("500")


def test_member_of_and_medication_code_follow_references() -> None:
    request = {"resourceType": "MedicationRequest", "medicationReference": {"reference": "Medication/med-1"}}
    contained = {"resourceType": "MedicationRequest", "contained": [dict(MEDICATION, id="m")], "medicationReference": {"reference": "#m"}}
    other = {"resourceType": "MedicationRequest", "medicationCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "1558-6"}]}}
    assert evaluate("%r.medicationCode().memberOf(%vs)", {"r": request, "vs": VS}) == [True]
    assert evaluate("%r.medicationCode().memberOf(%vs)", {"r": contained, "vs": VS}) == [True]
    assert evaluate("%r.medicationCode().memberOf(%vs)", {"r": other, "vs": VS}) == [False]


def test_instant_normalises_for_text_comparison() -> None:
    assert evaluate("%a.instant() > %b.instant()", {"a": "2026-01-01T01:00:00+02:00", "b": "2025-12-31T22:30:00Z"}) == [True]
    assert parse_fhir_datetime("2026-02") == datetime(2026, 2, 1, tzinfo=timezone.utc)


def test_dates_parse_the_same_when_parsed_again() -> None:
    # parse_fhir_datetime and format_instant remember results (lru_cache): same answers, every time.
    from cds_service.knowledge.functions import format_instant, resource_date

    for _ in range(2):
        assert parse_fhir_datetime("2026-03-02T23:59:00+02:00") == datetime(2026, 3, 2, 21, 59, tzinfo=timezone.utc)
        assert parse_fhir_datetime("2026-03") == datetime(2026, 3, 1, tzinfo=timezone.utc)
        assert parse_fhir_datetime("garbage") is None
        assert format_instant(datetime(2026, 3, 2, 23, 59, tzinfo=timezone.utc)) == "2026-03-02T23:59:00.000000Z"
    observation = {"resourceType": "Observation", "effectivePeriod": {"start": "2026-01-01"}, "issued": "2026-01-02T00:00:00Z"}
    assert resource_date(observation) == "2026-01-01"
    assert resource_date({"resourceType": "Observation", "effectivePeriod": "not an object", "issued": "2026-01-02T00:00:00Z"}) == "2026-01-02T00:00:00Z"
    assert resource_date({"resourceType": "Unknown"}) is None
