"""What DSTU2 (1.0) and STU3 (3.0) call by other names, mapped to FHIR R4 (4.0).

Data, not logic: the reader consults these tables when an element or resource type is not
R4's. Only names R4 does not use for the same resource are listed, so applying them is safe
whichever version a resource came from (a resource does not say its version). Sources: the
FHIR R4 resource pages' "Changes since R3" and the DSTU2 -> STU3 maps (hl7.org/fhir/R4/
<resource>-version-maps.html), for the elements the knowledge can read.
"""

from __future__ import annotations

from collections.abc import Mapping

# Resource types renamed or replaced in R4.
RESOURCE_TYPES: Mapping[str, str] = {
    "MedicationOrder": "MedicationRequest",  # DSTU2
    "ProcedureRequest": "ServiceRequest",  # DSTU2, STU3
    "DiagnosticOrder": "ServiceRequest",  # DSTU2 (lab orders)
    "ReferralRequest": "ServiceRequest",  # STU3
}

# Elements renamed in R4, by R4 owner type (resource, data type or backbone element).
ELEMENTS: Mapping[str, Mapping[str, str]] = {
    "MedicationRequest": {
        "patient": "subject",  # DSTU2 MedicationOrder
        "dateWritten": "authoredOn",
        "prescriber": "requester",
        "context": "encounter",  # STU3
    },
    "MedicationAdministration": {
        "patient": "subject",
        "effectiveTimeDateTime": "effectiveDateTime",
        "effectiveTimePeriod": "effectivePeriod",
        "encounter": "context",  # DSTU2 encounter -> R4 context (an Encounter reference)
    },
    "Condition": {
        "patient": "subject",
        "dateRecorded": "recordedDate",  # DSTU2
        "assertedDate": "recordedDate",  # STU3
        "context": "encounter",  # STU3
    },
    "Observation": {
        "context": "encounter",  # STU3
    },
    "Procedure": {
        "patient": "subject",
        "context": "encounter",
    },
    "ServiceRequest": {
        "patient": "subject",
        "orderedOn": "authoredOn",  # DSTU2 ProcedureRequest
        "scheduledDateTime": "occurrenceDateTime",
        "scheduledPeriod": "occurrencePeriod",
        "context": "encounter",
    },
    "TimingRepeat": {
        "periodUnits": "periodUnit",  # DSTU2
        "durationUnits": "durationUnit",
    },
}

# Dose elements that DSTU2 and STU3 keep on the Dosage itself and R4 moves into doseAndRate[].
DOSAGE_DOSE_ELEMENTS: tuple[str, ...] = ("doseQuantity", "doseRange", "rateRatio", "rateRange", "rateQuantity")

# Elements that were a plain code before R4 and are a CodeableConcept with a required binding
# in R4: a code found there becomes a coding of the R4 code system.
CODE_TO_CONCEPT: Mapping[tuple[str, str], str] = {
    ("Condition", "clinicalStatus"): "http://terminology.hl7.org/CodeSystem/condition-clinical",
    ("Condition", "verificationStatus"): "http://terminology.hl7.org/CodeSystem/condition-ver-status",
}

# The codes of those R4 code systems (required bindings): a plain code outside them is refused.
CONCEPT_CODES: Mapping[str, frozenset[str]] = {
    "http://terminology.hl7.org/CodeSystem/condition-clinical": frozenset(
        {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}
    ),
    "http://terminology.hl7.org/CodeSystem/condition-ver-status": frozenset(
        {"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"}
    ),
}

# Codes renamed in R4 in those code systems (DSTU2/STU3 -> R4).
CODES: Mapping[tuple[str, str], Mapping[str, str]] = {
    ("Condition", "verificationStatus"): {"unknown": "unconfirmed"},
}

# Search: the resource type a server of an older version holds each R4 type under.
SEARCH_TYPES: Mapping[str, Mapping[str, str]] = {
    "1.0": {"MedicationRequest": "MedicationOrder", "ServiceRequest": "DiagnosticOrder"},
    "3.0": {"ServiceRequest": "ProcedureRequest"},
}


def release(fhir_version: str | None) -> str:
    """'1.0', '3.0' or '4.0' from a CapabilityStatement's fhirVersion ('1.0.2', '3.0.1', '4.0.1')."""
    if isinstance(fhir_version, str):
        if fhir_version.startswith(("1.0", "0.")):
            return "1.0"
        if fhir_version.startswith(("3.0", "1.4", "1.6", "1.8")):
            return "3.0"
    return "4.0"
