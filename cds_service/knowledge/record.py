"""The patient record one hook call is decided on, and its named inputs.

Resources arrive as JSON (prefetch or FHIR search) and are read once, when the record is
made, by the knowledge's ``ResourceReader``: R4-shaped, only the elements the knowledge
uses, every value checked; what could not be read is kept in ``problems`` (reported, never
silently dropped). Each knowledge input (a DataRequirement: a type plus an optional ValueSet
filter) is then served as a small, pre-filtered list, as HL7's $apply does with
``%<input id>``: FHIRPath walks a handful of resources instead of the whole chart.

Selecting is indexed: the first input of a type groups that type's resources by their
codes (once per record), and each input then checks ValueSet membership once per
distinct code combination instead of once per resource. A 10,000-resource chart holds a
few dozen distinct codes per type, so 25 Observation inputs cost a few hundred membership
checks rather than 200,000. Selected resources keep the order in which they arrived.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from heapq import merge
from typing import Any

from ..fhir.reader import ReadProblem, ResourceReader
from ..fhir.resources import codings, medication_concept, reference_key
from .model import DataRequirement
from .terminology import ValueSetIndex

CodeKey = tuple[tuple[str, str], ...]  # the (system, code) pairs of a concept's codings, in order


@dataclass
class PatientRecord:
    patient: Mapping[str, Any] | None
    resources: Mapping[str, list[Mapping[str, Any]]]  # read (R4-shaped), by resourceType, in the order received
    problems: tuple[ReadProblem, ...] = ()  # what could not be read
    _inputs: dict[tuple[str, str], list[Mapping[str, Any]]] = field(default_factory=dict, repr=False)
    _by_reference: dict[str, Mapping[str, Any]] | None = field(default=None, repr=False)
    # (resource type, code path) -> codes -> positions in resources[type], ascending
    _code_index: dict[tuple[str, str], dict[CodeKey, list[int]]] = field(default_factory=dict, repr=False)

    @classmethod
    def read(cls, resources: Iterable[Any], reader: ResourceReader, patient_id: str | None = None) -> PatientRecord:
        """Read raw resource JSON (prefetch, FHIR search results) into a record."""
        by_type: dict[str, list[Mapping[str, Any]]] = {}
        problems: list[ReadProblem] = []
        for raw in resources:
            result = reader.read(raw)
            problems.extend(result.problems)
            if result.resource is not None:
                by_type.setdefault(result.resource["resourceType"], []).append(result.resource)
        patients = [p for p in by_type.get("Patient", []) if patient_id is None or p.get("id") == patient_id]
        return cls(patient=patients[0] if patients else None, resources=by_type, problems=tuple(problems))

    def resolve(self, reference: str) -> Mapping[str, Any] | None:
        if self._by_reference is None:
            self._by_reference = {}
            for resources in self.resources.values():
                for resource in resources:
                    key = reference_key(resource)
                    if key:
                        self._by_reference.setdefault(key, resource)
        return self._by_reference.get(reference.split("/_history/")[0])

    def input(self, requirement: DataRequirement, terminology: ValueSetIndex) -> list[Mapping[str, Any]]:
        """The resources of the requirement's type that pass its code filter."""
        key = (requirement.id, requirement.type)
        cached = self._inputs.get(key)
        if cached is not None:
            return cached
        if requirement.type == "Patient":
            selected = [self.patient] if self.patient is not None else []
        else:
            selected = self._candidates(requirement, terminology)
        self._inputs[key] = selected
        return selected

    def _candidates(self, requirement: DataRequirement, terminology: ValueSetIndex) -> list[Mapping[str, Any]]:
        """Resources of the requirement's type whose code is in its ValueSet, in the order received."""
        resources = self.resources.get(requirement.type, [])
        if requirement.value_set is None:
            return list(resources)
        value_set = requirement.value_set
        terminology.contains_any(value_set, ())  # an unknown ValueSet fails even when there is nothing to check
        groups = self._codes(requirement.type, requirement.code_path or "code")
        matching = [positions for codes, positions in groups.items() if codes and terminology.contains_pairs(value_set, codes)]
        if len(matching) == 1:
            return [resources[position] for position in matching[0]]
        return [resources[position] for position in merge(*matching)]

    def _codes(self, resource_type: str, code_path: str) -> dict[CodeKey, list[int]]:
        """Group the resources of a type by the codes at ``code_path``, once per record."""
        index_key = (resource_type, code_path)
        groups = self._code_index.get(index_key)
        if groups is None:
            groups = {}
            for position, resource in enumerate(self.resources.get(resource_type, [])):
                if code_path == "medication":
                    concept = medication_concept(resource, self.resolve)
                else:
                    concept = resource.get(code_path)
                groups.setdefault(_code_key(concept), []).append(position)
            self._code_index[index_key] = groups
        return groups


def _code_key(concept: Any) -> CodeKey:
    # A coding whose system or code is missing, empty or not a string is in no ValueSet.
    return tuple(
        (system, code)
        for coding in codings(concept)
        if isinstance(system := coding.get("system"), str) and system
        and isinstance(code := coding.get("code"), str) and code
    )
