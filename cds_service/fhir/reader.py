"""Read FHIR resources leniently in shape and strictly in value, and say what could not be read.

Real clients send near-misses of FHIR R4: one object where R4 has a list (the CDS Hooks
sandbox's draft ``category``), a one-item list where R4 has one value, DSTU2/STU3 names
(``MedicationOrder``, ``dateWritten``, ``patient``, ``periodUnits``, a dose on the Dosage
itself). Validating whole resources against the R4 model and dropping any that failed turned
such orders into silent "all clear" answers. The reader instead:

- reads only the elements the loaded knowledge uses (``element_names``, derived at start-up
  from its FHIRPath expressions and the functions that read resources), of the resource types
  it uses, and leaves every other element and type alone;
- accepts the known shape deviations (``versions.py``) and returns R4-shaped JSON, so FHIRPath
  and the functions see one shape (a resource already valid R4 in every element read is used
  as it came: ``fast_path.py``; one that needs repair is copied, with only the elements read);
- checks every value it reads against its R4 type (a date is a date, a decimal a number, a
  code one of the codes a required binding allows, an id an id) and drops that element, not
  the resource, when it fails;
- reports each element or resource it could not read as a ``ReadProblem`` (type, id, element
  path, what was wrong; never the value), for the explain trace, the log and the response.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from . import patterns, versions
from .definitions import ElementDefinition, UnknownType, elements_of, is_resource_type
from .fast_path import FastPath

_ID = re.compile(patterns.ID)
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{0,63}")
_CODE = re.compile(patterns.CODE)
_NO_SPACE = re.compile(r"\S+")
_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_DATETIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})"
    r"(?:T([01]\d|2[0-3]):([0-5]\d):([0-5]\d|60)(\.\d+)?(Z|[+-](?:(?:0\d|1[0-3]):[0-5]\d|14:00))?)?)?)?"
)
_INSTANT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):([0-5]\d):([0-5]\d|60)(\.\d+)?(Z|[+-](?:(?:0\d|1[0-3]):[0-5]\d|14:00))"
)
_TIME = re.compile(patterns.TIME)
_REFERENCE = re.compile(patterns.REFERENCE)

# What a draft order is an order *of*: present but unreadable means it cannot be checked.
ORDERED_ITEM: Mapping[str, str] = {"MedicationRequest": "medication", "ServiceRequest": "code"}

# FHIR requires a zone with a time; a feed that leaves it out loses at most a day, which is
# less harm than losing the date: read as UTC (as the date functions do), and say so.
NO_TIME_ZONE = "dateTime with a time but no time zone (read as UTC)"

# Types never worth reading for decision support (the narrative is for humans).
_SKIPPED_TYPES = frozenset({"Narrative", "Extension", "Meta"})


def type_name(value: Any) -> str | None:
    """``value`` if it is shaped like a FHIR type name (safe to log and show), else None."""
    return value if isinstance(value, str) and _TYPE_NAME.fullmatch(value) else None


@dataclass(frozen=True, slots=True)
class ReadProblem:
    """Something the reader could not read. Every field is safe to log: no client values."""

    resource_type: str  # an R4 type, or a validated type name as sent, or "(unknown)"
    resource_id: str | None  # only a valid FHIR id; None when absent or not valid
    element: str  # R4 element path, e.g. "dosageInstruction[0].timing.repeat.periodUnit"; "" = whole resource
    issue: str  # from a fixed vocabulary, e.g. "not a valid dateTime"

    def to_json(self) -> dict[str, Any]:
        """The response extension's item: absent members are left out (CDS Hooks JSON has no nulls)."""
        data: dict[str, Any] = {"resourceType": self.resource_type}
        if self.resource_id is not None:
            data["id"] = self.resource_id
        if self.element:
            data["element"] = self.element
        data["issue"] = self.issue
        return data

    def describe(self) -> str:
        where = f"{self.resource_type}/{self.resource_id or '(no id)'}"
        return f"{where} {self.element or '(resource)'}: {self.issue}"


class ReadResult(NamedTuple):  # a NamedTuple: made once per resource, on the hot path
    resource: dict[str, Any] | None  # R4-shaped (repaired copies hold only the elements read); None: not read
    problems: tuple[ReadProblem, ...]
    source_type: str | None = None  # the resourceType as sent, when valid and renamed (MedicationOrder)


class ResourceReader:
    """Reads the resource types and elements one loaded knowledge base uses."""

    def __init__(self, resource_types: Iterable[str], element_names: Iterable[str]) -> None:
        self.element_names = frozenset(element_names)
        self.resource_types = frozenset(resource_types) | {"Medication"}  # medicationReference targets
        unknown = [name for name in self.resource_types if not is_resource_type(name)]
        if unknown:
            raise UnknownType(", ".join(sorted(unknown)))
        self._plans: dict[str, dict[str, ElementDefinition]] = {}
        # Building the fast path's structs builds every plan reachable from these types, so no
        # request pays for one.
        self._fast = FastPath(self._plan, self.resource_types)

    def _plan(self, type_name: str) -> dict[str, ElementDefinition]:
        """JSON key (R4 or an older name) -> the R4 element it is read as, for wanted elements."""
        plan = self._plans.get(type_name)
        if plan is None:
            plan = {}
            for name, definition in elements_of(type_name).items():
                if definition.type in _SKIPPED_TYPES:
                    continue
                if name in self.element_names or (definition.choice is not None and definition.choice in self.element_names):
                    plan[name] = definition
            for old_name, new_name in versions.ELEMENTS.get(type_name, {}).items():
                if new_name in plan and old_name not in plan:
                    plan[old_name] = plan[new_name]
            if type_name == "Dosage" and "doseAndRate" in plan:
                dose_and_rate = elements_of("DosageDoseAndRate")
                for old_name in versions.DOSAGE_DOSE_ELEMENTS:
                    plan.setdefault(old_name, dose_and_rate[old_name])
            self._plans[type_name] = plan
        return plan

    def read(self, raw: Any) -> ReadResult:
        problems: list[ReadProblem] = []
        if not isinstance(raw, Mapping):
            return ReadResult(None, (ReadProblem("(unknown)", None, "", "not a JSON object"),))
        sent_type = raw.get("resourceType")
        if type(sent_type) is str and sent_type in self.resource_types and self._fast.accepts(raw, sent_type):
            # Valid R4 in every element read: used as it came (FHIRPath and the functions read
            # only those elements, so the rest of it is never looked at).
            return ReadResult(raw if type(raw) is dict else dict(raw), ())
        resource_id = raw.get("id")
        valid_id = resource_id if isinstance(resource_id, str) and _ID.fullmatch(resource_id) else None
        if not isinstance(sent_type, str) or not _TYPE_NAME.fullmatch(sent_type):
            issue = "resourceType is missing" if sent_type is None else "resourceType is not a FHIR type name"
            return ReadResult(None, (ReadProblem("(unknown)", valid_id, "resourceType", issue),))
        resource_type = versions.RESOURCE_TYPES.get(sent_type, sent_type)
        if resource_type not in self.resource_types:
            if is_resource_type(resource_type):
                return ReadResult(None, ())  # valid FHIR the knowledge does not use: not read, nothing lost
            return ReadResult(None, (ReadProblem(sent_type, valid_id, "", "not a FHIR resource type this service can read"),))
        context = _Context(self, resource_type, valid_id, problems)
        resource: dict[str, Any] = {"resourceType": resource_type}
        if resource_id is not None:
            if valid_id is None:
                problems.append(ReadProblem(resource_type, None, "id", "not a valid FHIR id"))
            else:
                resource["id"] = valid_id
        resource.update(context.complex(raw, resource_type, ""))
        return ReadResult(resource, tuple(problems), sent_type if sent_type != resource_type else None)


class _Context:
    """One resource's reading: where problems go, and whom they are about."""

    __slots__ = ("problems", "reader", "resource_id", "resource_type")

    def __init__(self, reader: ResourceReader, resource_type: str, resource_id: str | None, problems: list[ReadProblem]) -> None:
        self.reader = reader
        self.resource_type = resource_type
        self.resource_id = resource_id
        self.problems = problems

    def problem(self, path: str, issue: str) -> None:
        self.problems.append(ReadProblem(self.resource_type, self.resource_id, path, issue))

    def complex(self, raw: Mapping[str, Any], type_name: str, path: str) -> dict[str, Any]:
        plan = self.reader._plan(type_name)
        out: dict[str, Any] = {}
        moved_doses: list[tuple[str, Any]] = []
        for key, value in raw.items():
            definition = plan.get(key)
            if definition is None or value is None:
                continue
            if type_name == "Dosage" and key in versions.DOSAGE_DOSE_ELEMENTS:
                moved_doses.append((key, value))
                continue
            if definition.name != key:
                if raw.get(definition.name) is not None:
                    continue  # the R4 name is there too: it wins
            element_path = f"{path}.{definition.name}" if path else definition.name
            read = self.element(value, definition, type_name, element_path)
            if read is not None:
                out[definition.name] = read
        if moved_doses and raw.get("doseAndRate") is None:
            # DSTU2/STU3 Dosage.doseQuantity -> R4 Dosage.doseAndRate[0].doseQuantity
            out["doseAndRate"] = [self.complex(dict(moved_doses), "DosageDoseAndRate", f"{path}.doseAndRate[0]")]
        self._one_choice_each(out, plan, path)
        return out

    def _one_choice_each(self, out: dict[str, Any], plan: Mapping[str, ElementDefinition], path: str) -> None:
        groups: dict[str, list[str]] = {}
        for name in out:
            choice = plan[name].choice if name in plan else None
            if choice is not None:
                groups.setdefault(choice, []).append(name)
        for choice, names in groups.items():
            if len(names) > 1:
                for name in names:
                    del out[name]
                self.problem(f"{path}.{choice}[x]" if path else f"{choice}[x]", "more than one type given for a single choice element")

    def element(self, value: Any, definition: ElementDefinition, owner: str, path: str) -> Any:
        if definition.is_list:
            items = value if isinstance(value, list) else [value]  # one object where R4 has a list
            if len(items) > patterns.MAX_VALUES:
                self.problem(path, f"more than {patterns.MAX_VALUES} values")
                return None
            read = [self.single(item, definition, owner, f"{path}[{index}]") for index, item in enumerate(items) if item is not None]
            return [item for item in read if item is not None]
        if isinstance(value, list):
            if len(value) != 1:
                if value:
                    self.problem(path, "several values where FHIR R4 allows one")
                return None
            value = value[0]  # a one-item list where R4 has one value
        return self.single(value, definition, owner, path)

    def single(self, value: Any, definition: ElementDefinition, owner: str, path: str) -> Any:
        if definition.is_primitive:
            issue = _primitive_problem(value, definition)
            if issue is None and owner == "Reference" and definition.name == "reference" and not _REFERENCE.fullmatch(value):
                issue = "not a valid reference (Type/id, an absolute URL or #id)"
            if issue is None:
                return value
            self.problem(path, issue)
            return value if issue == NO_TIME_ZONE else None
        if definition.type == "Resource":
            return self.contained(value, path)
        if isinstance(value, str) and definition.type == "CodeableConcept":
            system = versions.CODE_TO_CONCEPT.get((owner, definition.name))
            if system is not None:
                code = versions.CODES.get((owner, definition.name), {}).get(value, value)
                if code in versions.CONCEPT_CODES[system]:
                    return {"coding": [{"system": system, "code": code}]}
                self.problem(path, "not one of the codes FHIR R4 allows here")
                return None
        if not isinstance(value, Mapping):
            self.problem(path, f"not a {definition.type} object")
            return None
        return self.complex(value, definition.type, path)

    def contained(self, value: Any, path: str) -> Any:
        if isinstance(value, Mapping) and "contained" in value:
            # FHIR: a contained resource never contains others (and unbounded nesting would recurse).
            self.problem(f"{path}.contained", "a contained resource cannot contain resources")
            value = {key: item for key, item in value.items() if key != "contained"}
        result = self.reader.read(value)
        for problem in result.problems:
            element = f"{path}.{problem.element}" if problem.element else path
            self.problem(element, problem.issue)
        return result.resource


def _primitive_problem(value: Any, definition: ElementDefinition) -> str | None:
    """None when ``value`` is a valid FHIR R4 value of the element's primitive type."""
    kind = definition.type
    if kind == "boolean":
        return None if type(value) is bool else "not a boolean"
    if kind in ("decimal", "integer", "positiveInt", "unsignedInt", "integer64"):
        return _number_problem(value, kind)
    if not isinstance(value, str):
        return f"not a valid {kind}"
    if kind == "code":
        if not _CODE.fullmatch(value):
            return "not a valid code"
        if definition.codes is not None and value not in definition.codes:
            return "not one of the codes FHIR R4 allows here"
        return None
    if kind == "dateTime":
        return _date_problem(_DATETIME.fullmatch(value), "dateTime")
    if kind == "date":
        return _date_problem(_DATE.fullmatch(value), "date")
    if kind == "instant":
        return _date_problem(_INSTANT.fullmatch(value), "instant")
    if kind == "time":
        return None if _TIME.fullmatch(value) else "not a valid time"
    if kind == "id":
        return None if _ID.fullmatch(value) else "not a valid id"
    if kind in ("uri", "url", "canonical", "oid", "uuid"):
        return None if _NO_SPACE.fullmatch(value) else f"not a valid {kind}"
    return None if value.strip() else f"an empty {kind}"


def _number_problem(value: Any, kind: str) -> str | None:
    if type(value) is bool or not isinstance(value, (int, float)):
        return f"not a {kind} number"
    if isinstance(value, float) and not math.isfinite(value):
        return f"not a {kind} number"
    if kind == "decimal":
        return None
    if isinstance(value, float) and not value.is_integer():
        return f"not a whole {kind}"
    if kind == "positiveInt" and value < 1:
        return "not a positive integer"
    if kind == "unsignedInt" and value < 0:
        return "not an unsigned integer"
    return None


def _date_problem(match: re.Match[str] | None, kind: str) -> str | None:
    if match is None:
        return f"not a valid {kind}"
    if len(match.group(0)) > patterns.MAX_DATE_CHARS:
        return f"not a valid {kind} (too long)"
    year, month, day = match.group(1), match.group(2), match.group(3)
    try:
        date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return f"not a valid {kind} (no such day)"
    if match.re.groups >= 8 and match.group(4) is not None:
        zone = match.group(8)
        if kind == "dateTime" and zone is None:
            return NO_TIME_ZONE
        try:  # the instant must exist in UTC too (0001-01-01T00:00:00+14:00 does not)
            text = f"{year}-{month}-{day}T{match.group(4)}:{match.group(5)}:00{(zone or 'Z').replace('Z', '+00:00')}"
            datetime.fromisoformat(text).astimezone(UTC)
        except (ValueError, OverflowError):
            return f"not a valid {kind} (outside the years 1-9999 in UTC)"
    return None
