"""The generic functions the revised rules lean on: units as feeds send them, local dates, episodes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from cds_service.knowledge.functions import _convert, latest_run_start, local_date
from cds_service.knowledge.units import canonical_unit, convert_quantity


@pytest.mark.parametrize(("sent", "unit"), [
    ("pmol/l", "pmol/L"), ("PMOL/L", "pmol/L"), ("ng/l", "ng/L"), ("pg/ml", "pg/mL"), ("umol/l", "umol/L"),
    ("µmol/L", "umol/L"), ("nmol/l", "nmol/L"), ("fl", "fL"), ("mL/min/1.73m2", "mL/min/{1.73_m2}"), (" mg ", "mg"),
])
def test_units_are_read_in_the_spellings_feeds_send(sent: str, unit: str) -> None:
    assert canonical_unit(sent) == unit


def test_unknown_units_stay_unknown() -> None:
    assert canonical_unit("mmol/mol") == "mmol/mol"
    assert convert_quantity(Decimal(105), "mmol/mol", "pmol/L") is None
    assert convert_quantity(Decimal(105), "pmol/l", "pg/mL") is None  # another dimension: knowledge converts it


def test_the_unit_text_is_read_when_the_code_is_not_a_unit() -> None:
    assert _convert({"value": 105, "unit": "pmol/l", "code": "PMOL-PER-L-LOCAL"}, "pmol/L") == Decimal(105)
    assert _convert({"value": 400, "code": "nmol/L"}, "umol/L") == Decimal("0.4")
    assert _convert({"value": 105, "unit": "units"}, "pmol/L") is None
    assert _convert({"value": 105}, "pmol/L") is None


@pytest.mark.parametrize(("written", "day"), [
    ("2026-03-01T23:30:00-05:00", date(2026, 3, 1)),  # 2026-03-02 in UTC
    ("2026-03-02T01:00:00+05:00", date(2026, 3, 2)),  # 2026-03-01 in UTC
    ("2026-03-02T01:00:00Z", date(2026, 3, 2)),
    ("2026-03-02", date(2026, 3, 2)),
    ("2026-03", date(2026, 3, 1)),
])
def test_a_day_is_the_local_date_as_written(written: str, day: date) -> None:
    assert local_date(written) == day


@pytest.mark.parametrize("written", ["2026-02-30", "not a date", "2026-03-02T25:00:00Z", "9" * 80])
def test_what_is_not_a_date_has_no_day(written: str) -> None:
    assert local_date(written) is None


def _span(start: str, end: str | None = None) -> tuple[datetime, datetime, str]:
    begin = datetime.fromisoformat(start).replace(tzinfo=UTC)
    return begin, datetime.fromisoformat(end).replace(tzinfo=UTC) if end else begin, start


def test_an_episode_starts_after_a_gap_longer_than_the_limit() -> None:
    old_course, new_course = _span("2022-01-01"), _span("2026-05-01")
    assert latest_run_start([new_course, old_course], 180) == "2026-05-01"
    assert latest_run_start([_span("2025-11-02"), _span("2026-05-01")], 180) == "2025-11-02"  # 180 days: same episode
    assert latest_run_start([_span("2025-11-01"), _span("2026-05-01")], 180) == "2026-05-01"  # 181 days: a new one


def test_a_long_course_bridges_the_gap() -> None:
    # A course that lasted until shortly before the next one is one episode with it.
    assert latest_run_start([_span("2024-01-01", "2026-04-01"), _span("2026-05-01")], 180) == "2024-01-01"
    assert latest_run_start([], 180) is None
