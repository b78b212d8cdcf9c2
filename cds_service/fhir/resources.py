"""Small pure helpers on (already read) FHIR resource JSON."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# The FHIR elements these helpers read, for the resource reader.
ELEMENTS_READ = frozenset({"medicationCodeableConcept", "medicationReference", "reference", "contained", "code", "coding", "system"})


def reference_key(resource: Mapping[str, Any]) -> str | None:
    resource_type, resource_id = resource.get("resourceType"), resource.get("id")
    if isinstance(resource_type, str) and isinstance(resource_id, str):
        return f"{resource_type}/{resource_id}"
    return None


def medication_concept(
    resource: Mapping[str, Any], resolve_reference: Callable[[str], Mapping[str, Any] | None]
) -> Mapping[str, Any] | None:
    """The medication CodeableConcept of a Medication* resource, following references."""
    if resource.get("resourceType") == "Medication":
        return resource.get("code")
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, Mapping):
        return concept
    reference = resource.get("medicationReference")
    target = reference.get("reference") if isinstance(reference, Mapping) else None
    if not isinstance(target, str):
        return None
    if target.startswith("#"):
        for contained in resource.get("contained") or []:
            if isinstance(contained, Mapping) and contained.get("id") == target[1:]:
                return contained.get("code")
        return None
    medication = resolve_reference(target)
    return medication.get("code") if isinstance(medication, Mapping) else None


def codings(concept: Any) -> list[Mapping[str, Any]]:
    if not isinstance(concept, Mapping):
        return []
    return [coding for coding in concept.get("coding") or [] if isinstance(coding, Mapping)]
