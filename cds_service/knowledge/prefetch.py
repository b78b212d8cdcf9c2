"""Derive CDS Hooks prefetch templates from the data requirements of a service.

As in HL7's "FHIR Clinical Reasoning with CDS Hooks" mapping: one template per resource
type, searched by ``patient={{context.patientId}}``; a ``code`` token filter is added
when every requirement of that type filters ``code`` by an explicit, short code list.
Only features of the CDS Hooks 2.0 prefetch subset are used (type search, reference,
token equality), so every EHR that prefetches at all can satisfy them.
"""

from __future__ import annotations

from collections.abc import Iterable

from .model import DataRequirement
from .terminology import ValueSetIndex

PATIENT_KEY = "patient"
PATIENT_TEMPLATE = "Patient/{{context.patientId}}"
MAX_FILTER_CODES = 60  # beyond this the URL gets long and EHRs differ in what they accept


def prefetch_key(resource_type: str) -> str:
    return resource_type[0].lower() + resource_type[1:] + "s"


def derive_prefetch(
    requirements: Iterable[DataRequirement], terminology: ValueSetIndex
) -> dict[str, str]:
    """Return prefetch key -> template."""
    by_type: dict[str, list[DataRequirement]] = {}
    for requirement in requirements:
        if requirement.type != "Patient":
            by_type.setdefault(requirement.type, []).append(requirement)
    templates = {PATIENT_KEY: PATIENT_TEMPLATE}
    for resource_type in sorted(by_type):
        key = prefetch_key(resource_type)
        query = f"{resource_type}?patient={{{{context.patientId}}}}"
        codes = _code_filter(by_type[resource_type], terminology)
        if codes:
            query += "&code=" + ",".join(codes)
        templates[key] = query
    return templates


def _code_filter(requirements: list[DataRequirement], terminology: ValueSetIndex) -> list[str]:
    codes: set[str] = set()
    for requirement in requirements:
        if requirement.code_path != "code" or requirement.value_set is None:
            return []  # one unfiltered requirement needs every resource of the type
        if terminology.has_filters(requirement.value_set):
            return []  # regex families cannot be written as token equality
        codes |= terminology.codes(requirement.value_set)
    if not codes or len(codes) > MAX_FILTER_CODES:
        return []
    return sorted(codes)
