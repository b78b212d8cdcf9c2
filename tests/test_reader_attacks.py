"""What an attacker found in the resource reader (2026-12-01), each kept as a test through the API.

Each case changes one element of a clinical fixture whose card is known. The answer must be the
card, or the unreadable element reported (and for a draft, the order-not-checked card): never a
silent loss, never a stalled worker, never a client value in a log or a problem.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from cds_service.app import create_app
from cds_service.knowledge import functions

from .security.issuer import insecure_settings
from .support.scenarios import load_scenarios

SCENARIOS = {s.name: s for s in load_scenarios()}
FOLATE = SCENARIOS["folate-without-b12/b12-147-pmol-positive"]  # order-select: folate-without-b12 critical
PREGABALIN = SCENARIOS["neuropathic-pain/pregabalin-300-capsule-tid-900-positive"]  # order-select: 900 mg/day warning
UNREADABLE = "org.example.b12cds.unreadable"


def post(knowledge: Any, scenario: Any, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    body = copy.deepcopy(scenario.request)
    change(body)
    client = create_app(insecure_settings(), knowledge=knowledge, clock=lambda: scenario.now).test_client()
    # stdlib json: it writes integers beyond 64 bits, as an attacker's client would
    response = client.post(f"/cds-services/{scenario.expected['service']}", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def topics(payload: dict[str, Any]) -> list[str]:
    return [card["source"]["topic"]["code"] for card in payload["cards"]]


def draft(body: dict[str, Any]) -> dict[str, Any]:
    return body["context"]["draftOrders"]["entry"][0]["resource"]


def b12_result(body: dict[str, Any]) -> dict[str, Any]:
    return body["prefetch"]["observations"]["entry"][0]["resource"]


def test_an_stu3_dose_on_the_dosage_itself_is_moved_even_when_the_rest_is_r4(knowledge) -> None:
    def stu3_dose(body: dict[str, Any]) -> None:
        dosage = draft(body)["dosageInstruction"][0]
        dosage["doseQuantity"] = dosage.pop("doseAndRate")[0]["doseQuantity"]

    assert topics(post(knowledge, PREGABALIN, stu3_dose)) == ["neuropathic-pain"]


def test_a_null_dose_and_rate_beside_an_older_dose_does_not_hide_the_dose(knowledge) -> None:
    def null_and_old(body: dict[str, Any]) -> None:
        dosage = draft(body)["dosageInstruction"][0]
        dosage["doseQuantity"] = dosage["doseAndRate"][0]["doseQuantity"]
        dosage["doseAndRate"] = None

    assert topics(post(knowledge, PREGABALIN, null_and_old)) == ["neuropathic-pain"]


@pytest.mark.parametrize("value", ["310410\n", "310410 ", "310410\n\n"])
def test_a_code_with_a_trailing_newline_or_space_is_reported_and_the_order_not_passed(knowledge, value: str) -> None:
    def bad_code(body: dict[str, Any]) -> None:
        draft(body)["medicationCodeableConcept"]["coding"][0]["code"] = value

    payload = post(knowledge, FOLATE, bad_code)
    assert "order-not-checked" in topics(payload)
    assert [p["element"] for p in payload["extension"][UNREADABLE]] == ["medicationCodeableConcept.coding[0].code"]


@pytest.mark.parametrize("value", ["0000-01-01", "0000-05-12T08:30:00Z", "9999-12-31T23:00:00-14:00",
                                   "0001-01-01T00:00:00+14:00", "2026-05-12T08:30:00." + "0" * 100_000 + "Z"])
def test_dates_that_do_not_exist_in_utc_are_reported_not_fatal(knowledge, value: str) -> None:
    def bad_date(body: dict[str, Any]) -> None:
        b12_result(body)["effectiveDateTime"] = value

    functions._parse_datetime_text.cache_clear()
    payload = post(knowledge, FOLATE, bad_date)
    assert [p["element"] for p in payload["extension"][UNREADABLE]] == ["effectiveDateTime"]
    assert functions._parse_datetime_text.cache_info().currsize < 100  # no client-sized keys remembered


def test_a_leap_second_is_a_valid_time_and_still_counts(knowledge) -> None:
    def leap(body: dict[str, Any]) -> None:
        b12_result(body)["effectiveDateTime"] = "2026-05-12T23:59:60Z"

    payload = post(knowledge, FOLATE, leap)
    assert topics(payload) == ["folate-without-b12", "start-b12-replacement"] and "extension" not in payload


@pytest.mark.parametrize("dose", [1e20, 1e300, 12345678901234567890123])
def test_an_absurd_dose_is_still_above_the_maximum(knowledge, dose: float) -> None:
    def huge(body: dict[str, Any]) -> None:
        draft(body)["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = dose

    assert topics(post(knowledge, PREGABALIN, huge)) == ["neuropathic-pain"]


def test_a_huge_list_is_refused_quickly_not_walked(knowledge) -> None:
    def many_codings(body: dict[str, Any]) -> None:
        draft(body)["medicationCodeableConcept"]["coding"] = [{"system": "http://x", "code": "y"}] * 200_000

    started = time.monotonic()
    payload = post(knowledge, FOLATE, many_codings)
    assert time.monotonic() - started < 10  # was 26-30 s, and a worker timeout at 300,000
    assert "order-not-checked" in topics(payload)
    assert payload["extension"][UNREADABLE] == [{"resourceType": "MedicationRequest", "id": "draft-0",
                                                 "element": "medicationCodeableConcept.coding",
                                                 "issue": "more than 1000 values"}]


def test_a_plain_clinical_status_outside_the_r4_codes_is_reported(knowledge) -> None:
    scenario = SCENARIOS["exclude-other-causes/diagnosis-snomed-neuropathy-positive"]

    def bogus(body: dict[str, Any]) -> None:
        for entry in body["prefetch"]["conditions"]["entry"]:
            entry["resource"]["clinicalStatus"] = "bogus"

    payload = post(knowledge, scenario, bogus)
    assert {p["element"] for p in payload["extension"][UNREADABLE]} == {"clinicalStatus"}
