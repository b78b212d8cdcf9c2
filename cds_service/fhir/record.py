"""The patient record one hook call is decided on, and its named inputs.

Resources arrive as JSON (prefetch or FHIR search). Each knowledge input (a
DataRequirement: a type plus an optional ValueSet filter) is served as a small,
pre-filtered list, as HL7's $apply does with ``%<input id>``: FHIRPath then walks a
handful of resources instead of the whole chart. Resources are validated against the
FHIR R4 models when an input first selects them, so a resource no rule needs is never
paid for, and none is validated twice.

Selecting is indexed: the first input of a type groups that type's resources by their
codes (once per record), and each input then checks ValueSet membership once per
distinct code combination instead of once per resource. A 10,000-resource chart holds a
few dozen distinct codes per type, so 25 Observation inputs cost a few hundred membership
checks rather than 200,000. Selected resources keep the order in which they arrived.

Validation results are also remembered across calls, by content: whether a resource is
valid FHIR depends on its JSON alone, and an EHR sends the same chart again and again (the
patient-view on opening it, then order-select and order-sign for the same patient). The
key is a 128-bit BLAKE2b digest of the resource's JSON, so a resource that changes in any
way is validated again; the memory is bounded (``VALIDATION_CACHE_SIZE`` digests per worker,
least recently used dropped first), and a remembered invalid resource is logged as before.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from heapq import merge
from typing import Any

import orjson

from ..knowledge.model import DataRequirement
from ..knowledge.terminology import ValueSetIndex
from .resources import InvalidResource, codings, medication_concept, reference_key, validate_resource

logger = logging.getLogger(__name__)

CodeKey = tuple[tuple[str, str], ...]  # the (system, code) pairs of a concept's codings, in order

VALIDATION_CACHE_SIZE = 50_000  # about 8 MB of digests per worker
# digest of a resource's JSON -> None when it is valid, else the (loggable) reason it is not
_validation_cache: OrderedDict[bytes, str | None] = OrderedDict()


@dataclass
class PatientRecord:
    patient: Mapping[str, Any] | None
    resources: Mapping[str, list[Mapping[str, Any]]]  # by resourceType, as received
    _validity: dict[int, bool] = field(default_factory=dict, repr=False)
    _inputs: dict[tuple[str, str], list[Mapping[str, Any]]] = field(default_factory=dict, repr=False)
    _by_reference: dict[str, Mapping[str, Any]] | None = field(default=None, repr=False)
    # (resource type, code path) -> codes -> positions in resources[type], ascending
    _code_index: dict[tuple[str, str], dict[CodeKey, list[int]]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_resources(cls, resources: Iterable[Any], patient_id: str | None = None) -> PatientRecord:
        by_type: dict[str, list[Mapping[str, Any]]] = {}
        for resource in resources:
            if isinstance(resource, Mapping) and isinstance(resource.get("resourceType"), str):
                by_type.setdefault(resource["resourceType"], []).append(resource)
        record = cls(patient=None, resources=by_type)
        record.patient = record._pick_patient(patient_id)
        return record

    def _pick_patient(self, patient_id: str | None) -> Mapping[str, Any] | None:
        candidates = [p for p in self.resources.get("Patient", []) if patient_id is None or p.get("id") == patient_id]
        for candidate in candidates:
            if self.is_valid(candidate):
                return candidate
        return None

    def is_valid(self, resource: Mapping[str, Any]) -> bool:
        key = id(resource)
        cached = self._validity.get(key)
        if cached is None:
            problem = _validation_problem(resource)
            if problem is not None:
                # Type and element path only: the resource content is patient data.
                # INFO, not WARNING: the CDS Hooks Sandbox's Rx View sends an incomplete draft on every open.
                logger.info("ignoring a resource that is not valid FHIR R4: %s", problem)
            cached = problem is None
            self._validity[key] = cached
        return cached

    def resolve(self, reference: str) -> Mapping[str, Any] | None:
        if self._by_reference is None:
            self._by_reference = {}
            for resources in self.resources.values():
                for resource in resources:
                    key = reference_key(resource)
                    if key:
                        self._by_reference.setdefault(key, resource)
        resource = self._by_reference.get(reference.split("/_history/")[0])
        return resource if resource is not None and self.is_valid(resource) else None

    def input(self, requirement: DataRequirement, terminology: ValueSetIndex) -> list[Mapping[str, Any]]:
        """The valid resources of the requirement's type that pass its code filter."""
        key = (requirement.id, requirement.type)
        cached = self._inputs.get(key)
        if cached is not None:
            return cached
        if requirement.type == "Patient":
            selected = [self.patient] if self.patient is not None else []
        else:
            selected = [resource for resource in self._candidates(requirement, terminology) if self.is_valid(resource)]
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

    def valid_resources(self, resources: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        return [resource for resource in resources if self.is_valid(resource)]


def _code_key(concept: Any) -> CodeKey:
    # A coding whose system or code is missing, empty or not a string is in no ValueSet.
    return tuple(
        (system, code)
        for coding in codings(concept)
        if isinstance(system := coding.get("system"), str) and system
        and isinstance(code := coding.get("code"), str) and code
    )


def _validation_problem(resource: Mapping[str, Any]) -> str | None:
    """None if the resource is valid FHIR R4, else why not; remembered by content across calls."""
    try:
        digest = hashlib.blake2b(orjson.dumps(resource), digest_size=16).digest()
    except (TypeError, orjson.JSONEncodeError):
        digest = None  # not plain JSON data: validate, but do not remember
    if digest is not None and digest in _validation_cache:
        _validation_cache.move_to_end(digest)
        return _validation_cache[digest]
    try:
        validate_resource(resource)
        problem = None
    except InvalidResource as exc:
        problem = str(exc)
    if digest is not None:
        _validation_cache[digest] = problem
        if len(_validation_cache) > VALIDATION_CACHE_SIZE:
            _validation_cache.popitem(last=False)
    return problem


def clear_validation_cache() -> None:
    """Forget every remembered validation result (benchmarks of the cold path, tests)."""
    _validation_cache.clear()
