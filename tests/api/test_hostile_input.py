"""Hostile request bodies: each gets a specific 4xx JSON error, or is ignored where the spec allows.

Complements tests/api/test_hooks.py (413, malformed JSON, 415, unknown service, hook mismatch,
unrequested prefetch keys, invalid FHIR resources) and the fuzz test (tests/api/test_fuzz.py).
"""

from __future__ import annotations

import copy
import time
from datetime import datetime, timezone

import orjson
import pytest

from cds_service.app import create_app

from ..security.issuer import insecure_settings
from ..support.scenarios import load_scenarios

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SCENARIOS = {s.name: s for s in load_scenarios()}
POSITIVE = SCENARIOS["folate-without-b12/b12-199-positive"]
SERVICE = "/cds-services/b12-neuropathy-order-select"


@pytest.fixture(scope="module")
def client(knowledge):
    return create_app(insecure_settings(), knowledge=knowledge, clock=lambda: NOW).test_client()


def body() -> dict:
    return copy.deepcopy(POSITIVE.request)


def post_raw(client, raw: bytes):
    return client.post(SERVICE, data=raw, content_type="application/json")


# --------------------------------------------------------------------------- Bundle structure in prefetch

def _set(document: dict, path: str, value) -> dict:
    *parents, last = path.split(".")
    node = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return document


@pytest.mark.parametrize("path,value,field", [
    ("prefetch.observations.entry", 5, "prefetch.observations.entry"),
    ("prefetch.observations.entry", {"resource": {}}, "prefetch.observations.entry"),
    ("prefetch.observations.entry.0", 7, "prefetch.observations.entry.0"),
    ("prefetch.observations.entry.0", "x", "prefetch.observations.entry.0"),
    ("prefetch.observations.entry.0", None, "prefetch.observations.entry.0"),
    ("prefetch.observations.entry.0.resource", 5, "prefetch.observations.entry.0.resource"),
    ("prefetch.observations.entry.0.resource", [], "prefetch.observations.entry.0.resource"),
    ("prefetch.observations.entry.0.search", "match", "prefetch.observations.entry.0.search"),
    ("prefetch.observations.link", 5, "prefetch.observations.link"),
    ("prefetch.observations.link", [3], "prefetch.observations.link.0"),
])
def test_malformed_prefetch_bundles_are_400_naming_the_member(client, path: str, value, field: str) -> None:
    response = client.post(SERVICE, json=_set(body(), path, value))
    assert response.status_code == 400, response.get_json()
    assert response.get_json() == {"error": "invalid_request", "field": field, "message": response.get_json()["message"]}


@pytest.mark.parametrize("path,value,field", [
    ("prefetch.observations", 5, "prefetch.observations"),
    ("prefetch.observations", "Bundle", "prefetch.observations"),
    ("prefetch.observations", [], "prefetch.observations"),
    ("prefetch", [1], "prefetch"),
    ("context", 5, "context"),
    ("context.draftOrders", 5, "context.draftOrders"),
    ("context.draftOrders.entry", 5, "context.draftOrders.entry"),
    ("context.draftOrders.entry.0", 5, "context.draftOrders.entry.0"),
    ("context.draftOrders.entry.0.resource", 5, "context.draftOrders.entry.0.resource"),
    ("context.selections", "MedicationRequest/x", "context.selections"),
    ("context.patientId", {"id": "x"}, "context.patientId"),
    ("fhirAuthorization", 5, "fhirAuthorization"),
])
def test_numbers_and_strings_where_objects_belong_are_400(client, path: str, value, field: str) -> None:
    response = client.post(SERVICE, json=_set(body(), path, value))
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["field"] == field


def test_values_inside_resources_of_the_wrong_type_are_ignored_not_fatal(client) -> None:
    document = body()
    draft = document["context"]["draftOrders"]["entry"][0]["resource"]
    draft["dosageInstruction"] = "twice daily"
    draft["subject"] = 5
    observation = document["prefetch"]["observations"]["entry"][0]["resource"]
    document["prefetch"]["observations"]["entry"].append({"resource": {**observation, "id": "o2", "valueQuantity": [1],
                                                                       "code": {"coding": 5}, "effectiveDateTime": 5}})
    response = client.post(SERVICE, json=document)
    assert response.status_code == 200


# --------------------------------------------------------------------------- nesting, sizes, encodings

@pytest.mark.parametrize("depth", [100, 500, 1000])
def test_deep_nesting_within_orjsons_limit_is_handled(client, depth: int) -> None:
    document = body()
    document["context"]["draftOrders"]["entry"][0]["resource"]["extension"] = "@deep@"
    document["prefetch"]["observations"]["entry"][0]["resource"]["note"] = "@deeplist@"
    raw = orjson.dumps(document).decode()
    raw = raw.replace('"@deep@"', '{"a":' * depth + "1" + "}" * depth)
    raw = raw.replace('"@deeplist@"', "[" * depth + "]" * depth)
    response = post_raw(client, raw.encode())
    assert response.status_code in (200, 400), response.get_json()


def test_nesting_beyond_orjsons_limit_is_400_malformed_json(client) -> None:
    response = post_raw(client, b'{"hook": ' + b"[" * 2000 + b"]" * 2000 + b"}")
    assert response.status_code == 400
    assert response.get_json()["error"] == "malformed_json"


def test_giant_strings_are_handled(client) -> None:
    document = body()
    document["prefetch"]["patient"]["name"] = [{"text": "x" * 5_000_000}]
    document["context"]["draftOrders"]["entry"][0]["resource"]["note"] = [{"text": "\U0001F600" * 500_000}]
    response = client.post(SERVICE, json=document)
    assert response.status_code == 200
    assert len(response.get_json()["cards"]) == 2  # the folate card and the start card
    long_hook_instance = body()
    long_hook_instance["hookInstance"] = "h" * 100_000
    response = client.post(SERVICE, json=long_hook_instance)
    assert response.status_code == 400 and response.get_json()["field"] == "hookInstance"
    assert len(response.get_data()) < 2000  # the error does not echo the value


def test_a_big_prefetch_within_the_body_limit_is_answered_in_bounded_time(client) -> None:
    document = body()
    entries = document["prefetch"]["observations"]["entry"]
    template = entries[0]
    for index in range(3000):
        entry = copy.deepcopy(template)
        entry["resource"]["id"] = f"obs-{index}"
        entries.append(entry)
    started = time.monotonic()
    response = client.post(SERVICE, json=document)
    assert response.status_code == 200
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("raw", [b"\xef\xbb\xbf{}", b'{"hook": "\xff"}', b'{"hook": NaN}', b'{"a": 1e999}',
                                 b'{"a": ' + b"9" * 400 + b"}", b'{"hook": "\\ud800"}', b"[]", b"null", b'"x"', b"{} {}",
                                 b'{"a":1,"a":2}'])
def test_encoding_and_number_oddities(client, raw: bytes) -> None:
    response = post_raw(client, raw)
    assert response.status_code == 400
    assert response.get_json()["error"] in ("malformed_json", "invalid_request")


def test_duplicate_member_names_are_not_a_crash(client) -> None:
    raw = orjson.dumps(body())[:-1] + b', "hook": "order-select"}'
    assert post_raw(client, raw).status_code == 200


def test_unknown_hook_for_the_service_is_400_naming_hook(client) -> None:
    document = body()
    document["hook"] = "appointment-book"
    response = client.post(SERVICE, json=document)
    assert response.status_code == 400 and response.get_json()["field"] == "hook"


def test_unrequested_prefetch_keys_of_any_shape_are_ignored(client) -> None:
    document = body()
    document["prefetch"]["notOurs"] = None
    document["prefetch"]["alsoNotOurs"] = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Nope"}}]}
    document["prefetch"]["brokenNotOurs"] = {"resourceType": "Bundle", "entry": 5, "link": "x"}
    assert client.post(SERVICE, json=document).status_code == 200


@pytest.mark.parametrize("feedback", [
    {"feedback": 5}, {"feedback": [5]}, {"feedback": [{"card": 5}]}, {"feedback": []}, [1], {"feedback": [{}] * 10_000},
])
def test_hostile_feedback_is_400(client, feedback) -> None:
    response = client.post(f"{SERVICE}/feedback", json=feedback)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_client_identifiers_reach_the_log_only_when_shaped_like_identifiers(knowledge, caplog: pytest.LogCaptureFixture) -> None:
    from cds_service.app import create_app

    from ..security.issuer import insecure_settings
    from ..support.scenarios import load_scenarios

    scenario = next(s for s in load_scenarios() if s.name == "folate-without-b12/b12-199-positive")
    client = create_app(insecure_settings(), knowledge=knowledge, clock=lambda: scenario.now).test_client()
    body = dict(scenario.request, hookInstance="x\n2026-12-01 INFO forged line ZZMARKERZZ")
    caplog.set_level("INFO")
    assert client.post("/cds-services/b12-neuropathy-order-select", json=body).status_code == 200
    feedback = {"feedback": [{"card": "y\nforged ZZMARKERZZ", "outcome": "accepted", "outcomeTimestamp": "2026-06-01T12:00:00Z",
                              "acceptedSuggestions": [{"id": "a"}]}]}
    client.post("/cds-services/b12-neuropathy-order-select/feedback", json=feedback)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "ZZMARKERZZ" not in logged
    assert "(not shown: not an identifier)" in logged
