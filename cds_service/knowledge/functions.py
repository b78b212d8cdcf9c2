"""Custom FHIRPath functions the knowledge needs and fhirpathpy lacks.

They are generic (terminology membership, dates, units, reference resolution): no
clinical code, cut-off or rule lives here. Each call is pure given the evaluation's
clock, terminology and record, which are bound when the table is built for a request.
They follow fhirpathpy's documented user-function shape (``fn(inputs, *arguments)``, the
inputs and arguments already data: no FHIRPath nodes), so plain fhirpathpy can run them too (``cds_service.fhirpath.user_invocation_table``).

| function           | input                          | returns                                        |
|--------------------|--------------------------------|------------------------------------------------|
| memberOf(url)      | Coding / CodeableConcept       | true if any coding is in the ValueSet          |
| medicationCode()   | MedicationRequest/-Admin./...  | the medication CodeableConcept (refs resolved) |
| resolve()          | Reference                      | the referenced resource from the record        |
| effectiveDate()    | resource                       | its clinically relevant date/dateTime          |
| latest()           | resources                      | the one with the latest effectiveDate()        |
| daysSince()        | date / dateTime                | whole calendar days from its local date (its   |
|                    |                                | own UTC offset) to the clock's date            |
| episodeStart(gap)  | resources                      | start date of the latest run of them with no   |
|                    |                                | gap longer than ``gap`` days (an active one    |
|                    |                                | lasts until now)                               |
| hoursSince()       | date / dateTime                | hours from it to the clock (decimal)           |
| instant()          | date / dateTime                | normalised UTC timestamp, comparable as text   |
| quantityIn(unit)   | Quantity                       | its value converted to a UCUM unit             |
| earliest()         | resources                      | the one with the earliest effectiveDate()      |
| yearsSince()       | date / dateTime                | whole years from it to the clock (age)         |
| dailyDose(unit)    | MedicationRequest              | total daily dose from dosageInstruction        |
| dailyDoseAtLeast(u)| MedicationRequest              | the computable part of it (a lower bound)      |
| now() / today()    | -                              | the evaluation clock (never the host clock)    |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from ..fhir.patterns import MAX_DATE_CHARS
from ..fhir.resources import ELEMENTS_READ as RESOURCE_HELPER_ELEMENTS
from ..fhir.resources import codings as concept_codings
from ..fhir.resources import medication_concept
from ..fhirpath import (
    FunctionSpec,
    datetime_text,
    quantity_literal,
    typed_node,
)
from .dosing import ELEMENTS_READ as DOSING_ELEMENTS
from .dosing import daily_dose
from .terminology import ValueSetIndex
from .units import convert_quantity

# Where each resource type keeps the date that orders it clinically.
_DATE_PATHS: Mapping[str, tuple[str, ...]] = {
    "Observation": ("effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued"),
    "MedicationAdministration": ("effectiveDateTime", "effectivePeriod.start"),
    "MedicationRequest": ("authoredOn",),
    "MedicationStatement": ("effectiveDateTime", "effectivePeriod.start", "dateAsserted"),
    "ServiceRequest": ("authoredOn", "occurrenceDateTime", "occurrencePeriod.start"),
    "Condition": ("onsetDateTime", "onsetPeriod.start", "recordedDate"),
    "Procedure": ("performedDateTime", "performedPeriod.start"),
    "DiagnosticReport": ("effectiveDateTime", "effectivePeriod.start", "issued"),
}

# Where a resource keeps the end of the time it covers (a course of treatment).
_END_PATHS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "MedicationAdministration": (("effectivePeriod", "end"),),
    "MedicationRequest": (("dispenseRequest", "validityPeriod", "end"),),
}
# Statuses that mean "still in effect" for a request or an administration (FHIR R4 value sets).
_ONGOING_STATUSES = frozenset({"active", "on-hold", "in-progress"})

# The same, split once (resource_date runs for every resource a where() on dates visits).
_DATE_PATH_PARTS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    resource_type: tuple(tuple(path.split(".")) for path in paths) for resource_type, paths in _DATE_PATHS.items()
}

# Every FHIR element the functions below read from a resource, for the resource reader.
ELEMENTS_READ = frozenset(
    {part for paths in _DATE_PATHS.values() for path in paths for part in path.split(".")}
    | {part for paths in _END_PATHS.values() for path in paths for part in path}
    | {"status"}  # episodeStart
    | {"system", "code", "coding", "display", "text", "value", "unit", "reference"}  # memberOf, quantityIn, resolve
    | RESOURCE_HELPER_ELEMENTS
    | DOSING_ELEMENTS
)

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_LEAP_SECOND = re.compile(r"(T\d{2}:\d{2}):60")


def parse_fhir_datetime(value: Any) -> datetime | None:
    """Parse a FHIR date/dateTime/instant to an aware UTC datetime (partial dates -> start)."""
    if value is None:
        return None
    text = str(value).strip()
    if len(text) > MAX_DATE_CHARS:
        return None  # not a date the reader lets through; and never a key of the cache below
    return _parse_datetime_text(text)


@lru_cache(maxsize=8192)
def _parse_datetime_text(text: str) -> datetime | None:
    # Pure, and the same dates are parsed again and again (every where() on dates, every call).
    match = _DATE_RE.match(text)
    if match:
        year, month, day = match.groups()
        try:
            return datetime(int(year), int(month or 1), int(day or 1), tzinfo=UTC)
        except ValueError:  # year 0000, no such day: the reader refuses these
            return None
    # A leap second (valid FHIR, unknown to datetime) is read as the second before it.
    text = _LEAP_SECOND.sub(r"\1:59", text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            # FHIR requires an offset when a time is given; treat a missing one as UTC rather
            # than failing the whole evaluation on a sloppy timestamp (the reader reports it).
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # the reader refuses these; a date here is never fatal
        return None


def local_date(value: Any) -> date | None:
    """The calendar date of a date/dateTime in the UTC offset it was written with."""
    if value is None:
        return None
    text = str(value).strip()
    if len(text) > MAX_DATE_CHARS:
        return None
    return _local_date_text(text)


@lru_cache(maxsize=8192)
def _local_date_text(text: str) -> date | None:
    if _parse_datetime_text(text) is None:  # not a date the rules can use at all
        return None
    match = _DATE_RE.match(text[:10])
    if match and match.group(3):
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    parsed = _parse_datetime_text(text)  # a partial date (2025, 2025-03): its first day, as parsed
    return parsed.date() if parsed is not None else None


def latest_run_start(spans: list[tuple[datetime, datetime, str]], gap_days: int) -> str | None:
    """The start (as written) of the latest run of spans where no gap exceeds ``gap_days``."""
    if not spans:
        return None
    spans.sort(key=lambda span: span[0])
    run_start, run_end = spans[0][2], spans[0][1]
    for start, end, start_text in spans[1:]:
        if (start - run_end).total_seconds() > gap_days * 86400:
            run_start = start_text
        run_end = max(run_end, end)
    return run_start


def _end_date(resource: Mapping[str, Any]) -> datetime | None:
    for parts in _END_PATHS.get(str(resource.get("resourceType")), ()):
        value: Any = resource
        for part in parts:
            value = value.get(part) if isinstance(value, Mapping) else None
        moment = parse_fhir_datetime(value) if value else None
        if moment is not None:
            return moment
    return None


@lru_cache(maxsize=8192)
def format_instant(moment: datetime) -> str:
    """A fixed-width UTC form, so that text comparison orders instants correctly."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def resource_date(resource: Mapping[str, Any]) -> str | None:
    for parts in _DATE_PATH_PARTS.get(str(resource.get("resourceType")), ()):
        value: Any = resource
        for part in parts:
            value = value.get(part) if type(value) is dict or isinstance(value, Mapping) else None
        if value:
            return str(value)
    return None


@dataclass(frozen=True, slots=True)
class FunctionContext:
    """What a request's functions may see: the clock, the terminology, the record."""

    now: datetime
    terminology: ValueSetIndex
    resolve_reference: Callable[[str], Mapping[str, Any] | None]


def build_function_table(env: FunctionContext) -> dict[str, FunctionSpec]:
    today = env.now.date()

    def member_of(inputs: list[Any], url: Any) -> list[bool]:
        codings = [coding for item in inputs for coding in _codings(item)]
        if not inputs:
            return []
        return [env.terminology.contains_any(str(url), codings)]

    def medication_code(inputs: list[Any]) -> list[Any]:
        found = []
        for item in inputs:
            resource = item
            if not isinstance(resource, Mapping):
                continue
            concept = medication_concept(resource, env.resolve_reference)
            if concept is not None:
                found.append(typed_node(concept, "CodeableConcept"))
        return found

    def resolve(inputs: list[Any]) -> list[Any]:
        found = []
        for item in inputs:
            reference = item
            target = reference.get("reference") if isinstance(reference, Mapping) else reference
            if isinstance(target, str):
                resource = env.resolve_reference(target)
                if resource is not None:
                    found.append(resource)
        return found

    def effective_date(inputs: list[Any]) -> list[str]:
        dates = []
        for item in inputs:
            resource = item
            if isinstance(resource, Mapping):
                value = resource_date(resource)
                if value:
                    dates.append(value)
        return dates

    def extreme(inputs: list[Any], latest: bool) -> list[Any]:
        best, best_moment = None, None
        for item in inputs:
            resource = item
            moment = parse_fhir_datetime(resource_date(resource)) if isinstance(resource, Mapping) else None
            if moment is None:
                continue
            if best_moment is None or (moment > best_moment if latest else moment < best_moment):
                best, best_moment = item, moment
        return [] if best is None else [best]

    def latest(inputs: list[Any]) -> list[Any]:
        return extreme(inputs, latest=True)

    def earliest(inputs: list[Any]) -> list[Any]:
        return extreme(inputs, latest=False)

    def years_since(inputs: list[Any]) -> list[int]:
        years = []
        for item in inputs:
            moment = parse_fhir_datetime(item)
            if moment is not None:
                born = moment.date()
                years.append(today.year - born.year - ((today.month, today.day) < (born.month, born.day)))
        return years

    def doses(inputs: list[Any], unit: Any, at_least: bool) -> list[Decimal]:
        found = []
        for item in inputs:
            resource = item
            if not isinstance(resource, Mapping):
                continue
            concept = medication_concept(resource, env.resolve_reference)
            dose = daily_dose(resource, _product_name(concept, env.terminology), str(unit), at_least=at_least)
            if dose is not None:
                found.append(dose)
        return found

    def dose_per_day(inputs: list[Any], unit: Any) -> list[Decimal]:
        return doses(inputs, unit, at_least=False)

    def dose_per_day_at_least(inputs: list[Any], unit: Any) -> list[Decimal]:
        return doses(inputs, unit, at_least=True)

    def days_since(inputs: list[Any]) -> list[int]:
        # The day as the EHR wrote it (its own UTC offset), the same day a card shows beside the count.
        days = []
        for item in inputs:
            day = local_date(item)
            if day is not None:
                days.append((today - day).days)
        return days

    def episode_start(inputs: list[Any], gap_days: Any) -> list[str]:
        spans = []
        for item in inputs:
            resource = item
            if not isinstance(resource, Mapping):
                continue
            start_text = resource_date(resource)
            start = parse_fhir_datetime(start_text)
            if start is None or start_text is None:
                continue
            ongoing = resource.get("status") in _ONGOING_STATUSES
            spans.append((start, env.now if ongoing else max(start, _end_date(resource) or start), start_text))
        found = latest_run_start(spans, int(gap_days))
        return [] if found is None else [found]

    def hours_since(inputs: list[Any]) -> list[Decimal]:
        hours = []
        for item in inputs:
            moment = parse_fhir_datetime(item)
            if moment is not None:
                hours.append(Decimal(int((env.now - moment).total_seconds())) / 3600)
        return hours

    def instant(inputs: list[Any]) -> list[str]:
        moments = (parse_fhir_datetime(item) for item in inputs)
        return [format_instant(moment) for moment in moments if moment is not None]

    def quantity_in(inputs: list[Any], unit: Any) -> list[Decimal]:
        target = str(unit)
        values = []
        for item in inputs:
            converted = _convert(item, target)
            if converted is not None:
                values.append(converted)
        return values

    def now(_inputs: list[Any]) -> str:
        return datetime_text(env.now.isoformat())

    def today_fn(_inputs: list[Any]) -> str:
        return datetime_text(today.isoformat())

    specs = {
        "memberOf": FunctionSpec(member_of, {1: ["String"]}),
        "medicationCode": FunctionSpec(medication_code),
        "resolve": FunctionSpec(resolve),
        "effectiveDate": FunctionSpec(effective_date),
        "latest": FunctionSpec(latest),
        "earliest": FunctionSpec(earliest),
        "yearsSince": FunctionSpec(years_since),
        "dailyDose": FunctionSpec(dose_per_day, {1: ["String"]}),
        "dailyDoseAtLeast": FunctionSpec(dose_per_day_at_least, {1: ["String"]}),
        "daysSince": FunctionSpec(days_since),
        "episodeStart": FunctionSpec(episode_start, {1: ["Integer"]}),
        "instant": FunctionSpec(instant),
        "hoursSince": FunctionSpec(hours_since),
        "quantityIn": FunctionSpec(quantity_in, {1: ["String"]}),
        "now": FunctionSpec(now),
        "today": FunctionSpec(today_fn),
    }
    return specs


CUSTOM_FUNCTION_NAMES = frozenset(
    ["memberOf", "medicationCode", "resolve", "effectiveDate", "latest", "earliest", "yearsSince", "dailyDose", "dailyDoseAtLeast",
     "daysSince", "episodeStart", "hoursSince", "instant", "quantityIn", "now", "today"]
)


def _codings(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, Mapping):
        return []
    if "coding" in value:
        return [c for c in value.get("coding") or [] if isinstance(c, Mapping)]
    if "code" in value and "system" in value:
        return [value]
    return []


def _product_name(concept: Any, terminology: ValueSetIndex) -> str | None:
    """The RxNorm product name: the coding's display, else the loaded ValueSets' display."""
    for coding in concept_codings(concept):
        if coding.get("system") != RXNORM:
            continue
        if coding.get("display"):
            return str(coding["display"])
        for url in terminology.urls():
            display = terminology.display(url, RXNORM, str(coding.get("code")))
            if display:
                return display
    return None


def _convert(quantity: Any, target_unit: str) -> Decimal | None:
    units: list[Any]
    literal = quantity_literal(quantity)
    if literal is not None:
        value, units = literal[0], [literal[1]]
    elif isinstance(quantity, Mapping):
        # The UCUM code first; failing that, the unit text (feeds often send only "pmol/l").
        value, units = quantity.get("value"), [quantity.get("code"), quantity.get("unit")]
    else:
        return None
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    for unit in units:
        if isinstance(unit, str) and unit:
            converted = convert_quantity(number, unit, target_unit)
            if converted is not None:
                return converted
    return None


__all__ = [
    "CUSTOM_FUNCTION_NAMES",
    "ELEMENTS_READ",
    "FunctionContext",
    "build_function_table",
    "format_instant",
    "latest_run_start",
    "local_date",
    "parse_fhir_datetime",
    "resource_date",
]
