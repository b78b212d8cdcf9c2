"""Hook-call and feedback request validation (CDS Hooks 2.0, spec file sections 2, 3, 5, 8.2)."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from cds_service.protocol.models import FhirAuthorization, HookRequest
from cds_service.protocol.validation import (
    RequestValidationError,
    validate_feedback_request,
    validate_hook_request,
)

TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LWZoaXItYWNjZXNzLXRva2Vu.Zm9v_YmFy-x"  # "_" makes it an invalid FHIR id

# S2 "Calling a CDS Service" example request.
SPEC_PATIENT_VIEW = {
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "fhirServer": "http://hooks.smarthealthit.org:9080",
    "hook": "patient-view",
    "fhirAuthorization": {
        "access_token": TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/Patient.read user/Observation.read",
        "subject": "cds-service4",
    },
    "context": {"userId": "Practitioner/example", "patientId": "1288992", "encounterId": "89284"},
    "prefetch": {
        "patientToGreet": {
            "resourceType": "Patient",
            "gender": "male",
            "birthDate": "1925-12-23",
            "id": "1288992",
            "active": True,
        }
    },
}

# CDS Hooks Sandbox "Patient View" tab: no encounterId, no fhirAuthorization, open FHIR server.
SANDBOX_PATIENT_VIEW = {
    "hookInstance": "3a4b2f6e-94a7-4c2f-9a9e-2f1a3c0e7d11",
    "hook": "patient-view",
    "fhirServer": "https://launch.smarthealthit.org/v/r4/fhir",
    "context": {"userId": "Practitioner/COREPRACTITIONER1", "patientId": "smart-1288992"},
}

MEDICATION_REQUEST = {
    "resourceType": "MedicationRequest",
    "id": "request-123",
    "status": "draft",
    "intent": "order",
    "medicationCodeableConcept": {
        "coding": [
            {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1116927", "display": "Folic Acid 5 MG Oral Tablet"}
        ],
        "text": "Folic Acid 5 MG Oral Tablet",
    },
    "subject": {"reference": "Patient/smart-1288992"},
    "authoredOn": "2026-03-31",
    "dosageInstruction": [
        {
            "text": "5 mg once daily",
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 5, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}],
        }
    ],
}

# CDS Hooks Sandbox "Rx View" tab: draftOrders Bundle WITHOUT "type".
SANDBOX_ORDER_SELECT = {
    "hookInstance": "5a6c7d8e-0f1a-4b2c-8d3e-4f5a6b7c8d9e",
    "hook": "order-select",
    "fhirServer": "https://launch.smarthealthit.org/v/r4/fhir",
    "context": {
        "userId": "Practitioner/COREPRACTITIONER1",
        "patientId": "smart-1288992",
        "selections": ["MedicationRequest/request-123"],
        "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": MEDICATION_REQUEST}]},
    },
    "prefetch": {"patient": {"resourceType": "Patient", "id": "smart-1288992"}, "b12Results": None},
}

# CDS Hooks Sandbox "Rx Sign" tab (DSTU2 default server sends MedicationOrder).
SANDBOX_ORDER_SIGN = {
    "hookInstance": "7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e",
    "hook": "order-sign",
    "fhirServer": "https://launch.smarthealthit.org/v/r2/fhir",
    "context": {
        "userId": "Practitioner/COREPRACTITIONER1",
        "patientId": "smart-1288992",
        "draftOrders": {
            "resourceType": "Bundle",
            "entry": [
                {
                    "resource": {
                        "resourceType": "MedicationOrder",
                        "id": "order-123",
                        "status": "draft",
                        "patient": {"reference": "Patient/smart-1288992"},
                        "dateWritten": "2026-03-31",
                    }
                }
            ],
        },
    },
}


def fresh(request: dict) -> dict:
    return copy.deepcopy(request)


def error_for(body: object, expected_hook: str | None = None) -> RequestValidationError:
    with pytest.raises(RequestValidationError) as caught:
        validate_hook_request(body, expected_hook)
    return caught.value


# ------------------------------------------------------------------ requests that must pass


@pytest.mark.parametrize(
    "request_body",
    [SPEC_PATIENT_VIEW, SANDBOX_PATIENT_VIEW, SANDBOX_ORDER_SELECT, SANDBOX_ORDER_SIGN],
    ids=["spec-patient-view", "sandbox-patient-view", "sandbox-order-select", "sandbox-order-sign"],
)
def test_realistic_requests_pass(request_body: dict) -> None:
    validate_hook_request(fresh(request_body))
    validate_hook_request(fresh(request_body), expected_hook=request_body["hook"])


def test_lenient_on_non_uuid_hook_instance_unknown_members_and_extension() -> None:
    body = fresh(SANDBOX_PATIENT_VIEW)
    body["hookInstance"] = "epic-instance-42"
    body["somethingNew"] = {"x": 1}
    body["extension"] = {"com.example.timestamp": "2026-03-31T10:00:00Z"}
    body["context"]["com.example.flag"] = True
    validate_hook_request(body)


def test_unknown_hook_gets_only_generic_checks() -> None:
    validate_hook_request({"hook": "encounter-start", "hookInstance": "1", "context": {"encounterId": "x y z"}})


def test_order_sign_does_not_require_selections_and_bundle_type_is_optional() -> None:
    body = fresh(SANDBOX_ORDER_SIGN)
    assert "selections" not in body["context"]
    assert "type" not in body["context"]["draftOrders"]
    validate_hook_request(body)


def test_draft_order_entry_without_resource_and_prefetch_null_are_accepted() -> None:
    body = fresh(SANDBOX_ORDER_SELECT)
    body["context"]["draftOrders"]["entry"].append({"fullUrl": "urn:uuid:0f0e"})
    body["prefetch"]["other"] = None
    validate_hook_request(body)


def test_fhir_authorization_patient_is_optional_and_expires_in_may_be_zero() -> None:
    body = fresh(SPEC_PATIENT_VIEW)
    body["fhirAuthorization"]["patient"] = "1288992"
    body["fhirAuthorization"]["expires_in"] = 0
    validate_hook_request(body)


# ------------------------------------------------------------------ one failing test per rule


@pytest.mark.parametrize("body", [[], "patient-view", None, 42, True])
def test_non_object_body(body: object) -> None:
    error = error_for(body)
    assert (error.field, error.message) == ("", "request body must be a JSON object")


@pytest.mark.parametrize("name", ["hook", "hookInstance", "context"])
def test_required_top_level_members(name: str) -> None:
    body = fresh(SANDBOX_PATIENT_VIEW)
    del body[name]
    error = error_for(body)
    assert (error.field, error.message) == (name, "is required")


def test_hook_must_be_a_string() -> None:
    body = fresh(SANDBOX_PATIENT_VIEW)
    body["hook"] = 7
    error = error_for(body)
    assert error.field == "hook"
    assert error.message == "must be of type string, not number"


def test_hook_instance_must_not_be_empty() -> None:
    body = fresh(SANDBOX_PATIENT_VIEW)
    body["hookInstance"] = ""
    assert error_for(body).to_json() == {"error": "invalid_request", "field": "hookInstance", "message": "must not be empty"}


def test_hook_instance_is_bounded() -> None:
    body = fresh(SANDBOX_PATIENT_VIEW)
    body["hookInstance"] = "a" * 257
    error = error_for(body)
    assert (error.field, error.message) == ("hookInstance", "must be at most 256 characters long")
    body["hookInstance"] = "a" * 256
    validate_hook_request(body)


@pytest.mark.parametrize("context", [[], "patient", None])
def test_context_must_be_an_object(context: object) -> None:
    body = fresh(SANDBOX_PATIENT_VIEW)
    body["context"] = context
    error = error_for(body)
    assert error.field == "context"
    assert error.message.startswith("must be of type object")


@pytest.mark.parametrize(
    "url", ["fhir.example.org/r4", "ftp://fhir.example.org/r4", "https://", "/fhir", "https://fhir example.org/r4", 5]
)
def test_fhir_server_must_be_an_absolute_http_url(url: object) -> None:
    body = fresh(SANDBOX_PATIENT_VIEW)
    body["fhirServer"] = url
    error = error_for(body)
    assert error.field == "fhirServer"
    if isinstance(url, str):
        assert error.message == "must be an absolute http or https URL"


def test_fhir_authorization_requires_fhir_server() -> None:
    body = fresh(SPEC_PATIENT_VIEW)
    del body["fhirServer"]
    error = error_for(body)
    assert (error.field, error.message) == ("fhirServer", "is required when 'fhirAuthorization' is present")


@pytest.mark.parametrize("name", ["access_token", "token_type", "expires_in", "scope", "subject"])
def test_fhir_authorization_required_members(name: str) -> None:
    body = fresh(SPEC_PATIENT_VIEW)
    del body["fhirAuthorization"][name]
    error = error_for(body)
    assert (error.field, error.message) == (f"fhirAuthorization.{name}", "is required")


@pytest.mark.parametrize("token_type", ["bearer", "MAC", 1])
def test_token_type_must_be_bearer(token_type: object) -> None:
    body = fresh(SPEC_PATIENT_VIEW)
    body["fhirAuthorization"]["token_type"] = token_type
    error = error_for(body)
    assert (error.field, error.message) == ("fhirAuthorization.token_type", 'must be "Bearer"')


@pytest.mark.parametrize(
    ("expires_in", "message"),
    [
        (-1, "must be greater than or equal to 0"),
        ("300", "must be of type integer, not string"),
        (300.5, "must be of type integer, not number"),
        (True, "must be of type integer, not boolean"),
    ],
)
def test_expires_in_must_be_a_non_negative_integer(expires_in: object, message: str) -> None:
    body = fresh(SPEC_PATIENT_VIEW)
    body["fhirAuthorization"]["expires_in"] = expires_in
    error = error_for(body)
    assert (error.field, error.message) == ("fhirAuthorization.expires_in", message)


def test_fhir_authorization_must_be_an_object() -> None:
    body = fresh(SPEC_PATIENT_VIEW)
    body["fhirAuthorization"] = TOKEN
    error = error_for(body)
    assert (error.field, error.message) == ("fhirAuthorization", "must be of type object, not string")


def test_prefetch_values_must_be_objects_or_null() -> None:
    body = fresh(SPEC_PATIENT_VIEW)
    body["prefetch"]["patientToGreet"] = "Patient/1288992"
    error = error_for(body)
    assert (error.field, error.message) == ("prefetch.patientToGreet", "must be of type object or null, not string")


def test_prefetch_must_be_an_object() -> None:
    body = fresh(SPEC_PATIENT_VIEW)
    body["prefetch"] = [{"resourceType": "Patient"}]
    assert error_for(body).field == "prefetch"


def test_prefetch_is_bounded() -> None:
    body = fresh(SANDBOX_PATIENT_VIEW)
    body["prefetch"] = {f"k{i}": None for i in range(65)}
    error = error_for(body)
    assert (error.field, error.message) == ("prefetch", "must have at most 64 members")


def test_extension_must_be_an_object() -> None:
    body = fresh(SANDBOX_PATIENT_VIEW)
    body["extension"] = "com.example"
    assert error_for(body).field == "extension"


@pytest.mark.parametrize(
    ("request_body", "name"),
    [
        (SANDBOX_PATIENT_VIEW, "userId"),
        (SANDBOX_PATIENT_VIEW, "patientId"),
        (SANDBOX_ORDER_SELECT, "userId"),
        (SANDBOX_ORDER_SELECT, "patientId"),
        (SANDBOX_ORDER_SELECT, "selections"),
        (SANDBOX_ORDER_SELECT, "draftOrders"),
        (SANDBOX_ORDER_SIGN, "userId"),
        (SANDBOX_ORDER_SIGN, "patientId"),
        (SANDBOX_ORDER_SIGN, "draftOrders"),
    ],
)
def test_hook_specific_required_context(request_body: dict, name: str) -> None:
    body = fresh(request_body)
    del body["context"][name]
    error = error_for(body)
    assert (error.field, error.message) == (f"context.{name}", "is required")


@pytest.mark.parametrize(
    "user_id", ["COREPRACTITIONER1", "Device/1", "Practitioner/", "Practitioner/a b", "practitioner/1", "Practitioner/1\n", 12]
)
def test_user_id_must_be_type_slash_id(user_id: object) -> None:
    body = fresh(SANDBOX_PATIENT_VIEW)
    body["context"]["userId"] = user_id
    error = error_for(body)
    assert error.field == "context.userId"
    if isinstance(user_id, str):
        assert error.message.startswith("must be a user reference such as Practitioner/123")


@pytest.mark.parametrize("user_id", ["PractitionerRole/x", "Patient/1", "RelatedPerson/2", "Practitioner/abc-1.2"])
def test_user_id_accepts_all_four_user_types(user_id: str) -> None:
    body = fresh(SANDBOX_PATIENT_VIEW)
    body["context"]["userId"] = user_id
    validate_hook_request(body)


@pytest.mark.parametrize("name", ["patientId", "encounterId"])
@pytest.mark.parametrize("value", ["", "Patient/123", "a_b", "x" * 65, "abc\n", "ab c"])
def test_patient_and_encounter_ids_must_be_fhir_ids(name: str, value: str) -> None:
    body = fresh(SANDBOX_ORDER_SIGN)
    body["context"][name] = value
    error = error_for(body)
    assert error.field == f"context.{name}"
    assert error.message.startswith("must be a FHIR id")


def test_sixty_four_character_patient_id_is_accepted() -> None:
    body = fresh(SANDBOX_PATIENT_VIEW)
    body["context"]["patientId"] = "A-1." + "x" * 60
    validate_hook_request(body)


def test_selections_must_be_an_array() -> None:
    body = fresh(SANDBOX_ORDER_SELECT)
    body["context"]["selections"] = "MedicationRequest/request-123"
    error = error_for(body)
    assert (error.field, error.message) == ("context.selections", "must be of type array, not string")


def test_selections_items_must_be_non_empty_strings() -> None:
    body = fresh(SANDBOX_ORDER_SELECT)
    body["context"]["selections"] = ["MedicationRequest/request-123", ""]
    error = error_for(body)
    assert (error.field, error.message) == ("context.selections.1", "must not be empty")


def test_selections_are_bounded() -> None:
    body = fresh(SANDBOX_ORDER_SELECT)
    body["context"]["selections"] = [f"MedicationRequest/{i}" for i in range(501)]
    error = error_for(body)
    assert (error.field, error.message) == ("context.selections", "must have at most 500 items")


def test_draft_orders_must_be_a_bundle() -> None:
    body = fresh(SANDBOX_ORDER_SELECT)
    body["context"]["draftOrders"]["resourceType"] = "MedicationRequest"
    error = error_for(body)
    assert (error.field, error.message) == ("context.draftOrders.resourceType", 'must be "Bundle"')


def test_draft_orders_must_be_an_object() -> None:
    body = fresh(SANDBOX_ORDER_SIGN)
    body["context"]["draftOrders"] = [MEDICATION_REQUEST]
    error = error_for(body)
    assert (error.field, error.message) == ("context.draftOrders", "must be of type object, not array")


def test_draft_orders_requires_entry_array() -> None:
    body = fresh(SANDBOX_ORDER_SIGN)
    del body["context"]["draftOrders"]["entry"]
    assert error_for(body).field == "context.draftOrders.entry"
    body["context"]["draftOrders"]["entry"] = {"resource": MEDICATION_REQUEST}
    error = error_for(body)
    assert (error.field, error.message) == ("context.draftOrders.entry", "must be of type array, not object")


def test_draft_orders_entries_are_bounded() -> None:
    body = fresh(SANDBOX_ORDER_SIGN)
    body["context"]["draftOrders"]["entry"] = [{"resource": MEDICATION_REQUEST}] * 501
    error = error_for(body)
    assert (error.field, error.message) == ("context.draftOrders.entry", "must have at most 500 items")


def test_draft_order_entry_must_be_an_object() -> None:
    body = fresh(SANDBOX_ORDER_SIGN)
    body["context"]["draftOrders"]["entry"].append("MedicationRequest/1")
    assert error_for(body).field == "context.draftOrders.entry.1"


def test_draft_order_resource_must_be_an_object() -> None:
    body = fresh(SANDBOX_ORDER_SELECT)
    body["context"]["draftOrders"]["entry"][0]["resource"] = "MedicationRequest/request-123"
    error = error_for(body)
    assert (error.field, error.message) == ("context.draftOrders.entry.0.resource", "must be of type object, not string")


def test_draft_order_resource_needs_a_string_resource_type() -> None:
    body = fresh(SANDBOX_ORDER_SELECT)
    del body["context"]["draftOrders"]["entry"][0]["resource"]["resourceType"]
    error = error_for(body)
    assert (error.field, error.message) == ("context.draftOrders.entry.0.resource.resourceType", "is required")
    body["context"]["draftOrders"]["entry"][0]["resource"]["resourceType"] = 3
    assert error_for(body).field == "context.draftOrders.entry.0.resource.resourceType"


def test_the_shallowest_error_is_reported_first() -> None:
    body = fresh(SANDBOX_ORDER_SELECT)
    del body["hookInstance"]
    del body["context"]["draftOrders"]["entry"][0]["resource"]["resourceType"]
    assert error_for(body).field == "hookInstance"


def test_expected_hook_mismatch() -> None:
    error = error_for(fresh(SANDBOX_ORDER_SIGN), expected_hook="order-select")
    assert error.field == "hook"
    assert error.message == "this service answers 'order-select', not 'order-sign'"


def test_expected_hook_mismatch_wins_over_context_errors() -> None:
    body = fresh(SANDBOX_ORDER_SIGN)
    del body["context"]["draftOrders"]
    assert error_for(body, expected_hook="patient-view").field == "hook"


def test_exception_text_carries_field_and_message() -> None:
    body = fresh(SANDBOX_PATIENT_VIEW)
    del body["context"]["patientId"]
    error = error_for(body)
    assert isinstance(error, ValueError)
    assert str(error) == "context.patientId: is required"


# ------------------------------------------------------------------ secrets


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b["fhirAuthorization"].__setitem__("token_type", "bearer"),
        lambda b: b["fhirAuthorization"].__setitem__("expires_in", TOKEN),
        lambda b: b["fhirAuthorization"].__setitem__("scope", ""),
        lambda b: b["fhirAuthorization"].__setitem__("patient", TOKEN),
        lambda b: b.__delitem__("fhirServer"),
        lambda b: b["context"].__setitem__("patientId", TOKEN),
        lambda b: b["context"].__setitem__("userId", TOKEN),
        lambda b: b["prefetch"].__setitem__(TOKEN, "leak"),
        lambda b: b.__setitem__("hookInstance", TOKEN * 10),
    ],
    ids=["token_type", "expires_in", "scope", "patient", "fhirServer", "patientId", "userId", "prefetch-key", "hookInstance"],
)
def test_access_token_never_appears_in_errors(mutate) -> None:
    body = fresh(SPEC_PATIENT_VIEW)
    mutate(body)
    error = error_for(body)
    for text in (str(error), repr(error), error.field, error.message, json.dumps(error.to_json())):
        assert TOKEN not in text
        assert "c2VjcmV0" not in text  # no fragment of it either


def test_access_token_is_redacted_from_an_echoed_hook_name() -> None:
    body = fresh(SPEC_PATIENT_VIEW)
    body["hook"] = TOKEN
    error = error_for(body, expected_hook="patient-view")
    assert TOKEN not in str(error) and TOKEN not in json.dumps(error.to_json())
    assert error.message == "this service answers 'patient-view', not '[redacted]'"


def test_access_token_is_not_in_model_repr() -> None:
    request = HookRequest.from_json(fresh(SPEC_PATIENT_VIEW))
    assert request.fhir_authorization is not None
    assert TOKEN not in repr(request.fhir_authorization)
    assert TOKEN not in str(request.fhir_authorization)
    assert TOKEN not in repr(request)
    assert "access_token" not in repr(request.fhir_authorization)


# ------------------------------------------------------------------ models


def test_hook_request_from_spec_example() -> None:
    request = HookRequest.from_json(fresh(SPEC_PATIENT_VIEW), expected_hook="patient-view")
    assert request.hook == "patient-view"
    assert request.hook_instance == "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"
    assert request.fhir_server == "http://hooks.smarthealthit.org:9080"
    assert request.patient_id == "1288992"
    assert request.user_id == "Practitioner/example"
    assert request.encounter_id == "89284"
    assert request.draft_orders == ()
    assert request.selections == ()
    assert request.prefetch is not None and request.prefetch["patientToGreet"]["birthDate"] == "1925-12-23"
    assert request.fhir_authorization == FhirAuthorization(
        access_token=TOKEN,
        token_type="Bearer",
        expires_in=300,
        scope="user/Patient.read user/Observation.read",
        subject="cds-service4",
        patient=None,
    )


def test_hook_request_from_sandbox_order_select() -> None:
    body = fresh(SANDBOX_ORDER_SELECT)
    body["context"]["draftOrders"]["entry"].append({"fullUrl": "urn:uuid:no-resource"})
    request = HookRequest.from_json(body)
    assert request.draft_orders == (MEDICATION_REQUEST,)
    assert request.selections == ("MedicationRequest/request-123",)
    assert request.encounter_id is None
    assert request.fhir_authorization is None
    assert request.prefetch == {"patient": {"resourceType": "Patient", "id": "smart-1288992"}, "b12Results": None}


def test_prefetch_is_none_only_when_absent() -> None:
    assert HookRequest.from_json(fresh(SANDBOX_PATIENT_VIEW)).prefetch is None
    body = fresh(SANDBOX_PATIENT_VIEW)
    body["prefetch"] = {}
    assert HookRequest.from_json(body).prefetch == {}


def test_expires_in_is_an_int_even_when_sent_as_whole_float() -> None:
    body = fresh(SPEC_PATIENT_VIEW)
    body["fhirAuthorization"]["expires_in"] = 300.0
    auth = HookRequest.from_json(body).fhir_authorization
    assert auth is not None and auth.expires_in == 300 and type(auth.expires_in) is int


def test_hook_request_is_frozen() -> None:
    request = HookRequest.from_json(fresh(SANDBOX_PATIENT_VIEW))
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.hook = "order-sign"  # type: ignore[misc]


def test_from_json_validates_and_checks_expected_hook() -> None:
    with pytest.raises(RequestValidationError) as caught:
        HookRequest.from_json(fresh(SANDBOX_ORDER_SELECT), expected_hook="order-sign")
    assert caught.value.field == "hook"
    body = fresh(SANDBOX_ORDER_SELECT)
    body["context"]["selections"] = [""]
    with pytest.raises(RequestValidationError) as caught:
        HookRequest.from_json(body)
    assert caught.value.field == "context.selections.0"


def test_patient_id_of_unknown_hook_without_one_fails_loudly() -> None:
    request = HookRequest.from_json({"hook": "appointment-book", "hookInstance": "1", "context": {}})
    with pytest.raises(KeyError, match="context.patientId"):
        request.patient_id


# ------------------------------------------------------------------ feedback

SPEC_FEEDBACK_ACCEPTED = {
    "feedback": [
        {
            "card": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
            "outcome": "accepted",
            "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
            "outcomeTimestamp": "2020-12-11T00:00:00Z",
        }
    ]
}

SPEC_FEEDBACK_OVERRIDDEN = {
    "feedback": [
        {
            "card": "9368d37b-283f-44a0-93ea-547cebab93ed",
            "outcome": "overridden",
            "overrideReason": {
                "reason": {
                    "code": "reason-code-provided-by-service",
                    "system": "http://example.org/cds-services/fhir/CodeSystem/override-reasons",
                    "display": "Patient refused",
                },
                "userComment": "clinician entered comment",
            },
            "outcomeTimestamp": "2020-12-11T00:00:00Z",
        }
    ]
}

# Sandbox dismissal with a picked reason: no display, no userComment.
SANDBOX_FEEDBACK_DISMISS = {
    "feedback": [
        {
            "card": "9368d37b-283f-44a0-93ea-547cebab93ed",
            "outcome": "overridden",
            "overrideReason": {"reason": {"code": "patient-refused", "system": "https://example.org/CodeSystem/override-reason"}},
            "outcomeTimestamp": "2026-03-31T10:15:42.123Z",
        },
        {"card": "1b2c3d4e-0000-4000-8000-000000000000", "outcome": "overridden", "outcomeTimestamp": "2026-03-31T10:15:43.001Z"},
    ]
}


@pytest.mark.parametrize("body", [SPEC_FEEDBACK_ACCEPTED, SPEC_FEEDBACK_OVERRIDDEN, SANDBOX_FEEDBACK_DISMISS])
def test_feedback_examples_pass(body: dict) -> None:
    validate_feedback_request(copy.deepcopy(body))


def feedback_error(body: object) -> RequestValidationError:
    with pytest.raises(RequestValidationError) as caught:
        validate_feedback_request(body)
    return caught.value


def test_feedback_body_must_be_an_object() -> None:
    error = feedback_error([SPEC_FEEDBACK_ACCEPTED["feedback"][0]])
    assert (error.field, error.message) == ("", "request body must be a JSON object")


def test_feedback_array_is_required_and_non_empty() -> None:
    assert feedback_error({}).field == "feedback"
    error = feedback_error({"feedback": []})
    assert (error.field, error.message) == ("feedback", "must not be empty")


@pytest.mark.parametrize("name", ["card", "outcome", "outcomeTimestamp"])
def test_feedback_required_members(name: str) -> None:
    body = copy.deepcopy(SPEC_FEEDBACK_OVERRIDDEN)
    del body["feedback"][0][name]
    error = feedback_error(body)
    assert (error.field, error.message) == (f"feedback.0.{name}", "is required")


def test_feedback_outcome_enum() -> None:
    body = copy.deepcopy(SPEC_FEEDBACK_OVERRIDDEN)
    body["feedback"][0]["outcome"] = "dismissed"
    error = feedback_error(body)
    assert (error.field, error.message) == ("feedback.0.outcome", 'must be one of: "accepted", "overridden"')


def test_accepted_feedback_requires_accepted_suggestions() -> None:
    body = copy.deepcopy(SPEC_FEEDBACK_ACCEPTED)
    del body["feedback"][0]["acceptedSuggestions"]
    error = feedback_error(body)
    assert (error.field, error.message) == ("feedback.0.acceptedSuggestions", "is required")


def test_accepted_suggestion_requires_id() -> None:
    body = copy.deepcopy(SPEC_FEEDBACK_ACCEPTED)
    body["feedback"][0]["acceptedSuggestions"] = [{"uuid": "e56e1945"}]
    assert feedback_error(body).field == "feedback.0.acceptedSuggestions.0.id"


@pytest.mark.parametrize("name", ["code", "system"])
def test_override_reason_coding_requires_code_and_system(name: str) -> None:
    body = copy.deepcopy(SPEC_FEEDBACK_OVERRIDDEN)
    del body["feedback"][0]["overrideReason"]["reason"][name]
    assert feedback_error(body).field == f"feedback.0.overrideReason.reason.{name}"


def test_second_feedback_item_is_checked_too() -> None:
    body = copy.deepcopy(SANDBOX_FEEDBACK_DISMISS)
    body["feedback"][1]["card"] = ""
    error = feedback_error(body)
    assert (error.field, error.message) == ("feedback.1.card", "must not be empty")


# --- the fast verdict (jsonschema-rs) and the Python validator agree -----------------------------


def _python_verdict(body: object) -> bool:
    from cds_service.protocol.validation import _HOOK_REQUEST

    return isinstance(body, dict) and not any(True for _ in _HOOK_REQUEST.iter_errors(body))


def test_the_fast_and_the_python_validator_agree_on_every_realistic_and_mutated_request() -> None:
    from hypothesis import HealthCheck, given, settings

    from cds_service.protocol.validation import _HOOK_REQUEST_FAST

    from ..api.test_fuzz import mutated, versioned

    seen = {"valid": 0, "invalid": 0}

    @settings(max_examples=1500, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=mutated("hook requests") | versioned().map(lambda body: (body, "application/json")))
    def agree(case: tuple[bytes, str]) -> None:
        try:
            body = json.loads(case[0])
        except (ValueError, RecursionError):
            return
        if not isinstance(body, dict):
            return
        python = _python_verdict(body)
        seen["valid" if python else "invalid"] += 1
        assert _HOOK_REQUEST_FAST.is_valid(body) == python, json.dumps(body)[:500]

    agree()
    assert seen["valid"] > 100 and seen["invalid"] > 100  # both verdicts were exercised
