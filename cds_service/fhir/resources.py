"""FHIR resource validation at the boundary, and small pure helpers on resource JSON.

R4 data is checked with the ``fhir.resources.R4B`` models: the package ships no R4, R4B
has the same element names for every resource we read, and the default R5 models reject
R4 MedicationRequests. The original JSON is kept for FHIRPath: the model only guards
the door, so no resource is converted twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from fhir.resources.R4B import get_fhir_model_class


_SAFE_NAME = re.compile(r"[^A-Za-z0-9_\-\[\]]")


class InvalidResource(ValueError):
    """A resource that is not valid FHIR R4; the message is safe to log (paths, no values)."""


def validate_resource(resource: Any) -> None:
    if not isinstance(resource, Mapping):
        raise InvalidResource("not a JSON object")
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise InvalidResource("resourceType is missing")
    try:
        model = get_fhir_model_class(resource_type)
    except KeyError:
        raise InvalidResource(f"unknown resourceType {resource_type!r}") from None
    try:
        model.model_validate(resource)
    except Exception as exc:  # pydantic ValidationError; fhir-core raises KeyError on odd nested types
        raise InvalidResource(f"{resource_type}: {_describe(exc)}") from None


def _describe(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return type(exc).__name__
    described = []
    for error in errors()[:3]:
        # Member names come from the client: keep them printable and short (no log injection).
        location = ".".join(_SAFE_NAME.sub("?", str(part))[:40] for part in error.get("loc", ()))
        # error["msg"] can quote the offending value; the type code cannot.
        described.append(f"{location or '(root)'} [{error.get('type')}]")
    return "; ".join(described)


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


def warm_up_models() -> None:
    """Build the pydantic schemas now, so the first live request does not pay ~10 ms each."""
    samples = [
        {"resourceType": "Patient", "id": "warm-up"},
        {"resourceType": "Observation", "status": "final", "code": {"text": "warm-up"}},
        {"resourceType": "Condition", "subject": {"reference": "Patient/warm-up"}},
        {"resourceType": "MedicationRequest", "status": "draft", "intent": "order", "medicationCodeableConcept": {"text": "warm-up"}, "subject": {"reference": "Patient/warm-up"}},
        {"resourceType": "MedicationAdministration", "status": "completed", "medicationCodeableConcept": {"text": "warm-up"}, "subject": {"reference": "Patient/warm-up"}, "effectiveDateTime": "2020-01-01"},
        {"resourceType": "ServiceRequest", "status": "draft", "intent": "order", "subject": {"reference": "Patient/warm-up"}},
    ]
    for sample in samples:
        validate_resource(sample)
