"""Property-based fuzzing of the HTTP API: thousands of malformed requests, never a 5xx.

Hypothesis builds requests from the real fixture requests by mutation (values replaced by
random JSON, numbers where objects belong, deep nesting up to orjson's limit, giant strings,
members deleted or added), plus raw garbage bodies, truncated JSON, odd content types, methods
and paths, and random Authorization headers and signed JWTs with random claims. The EHR's
FHIR server, for requests that lack prefetch, is a stand-in answering with random statuses
and bodies. Every response must be below 500 and JSON; every 200 from a hook must be a valid
CDS Hooks response.

Drafts and prefetch resources are also rewritten into other FHIR versions and shapes (DSTU2
``MedicationOrder``, STU3 ``ProcedureRequest``, renamed elements, one object for a list, a list
for one value, unknown or non-string resource types), seeded with what the real CDS Hooks
sandbox sent as well as the clinical fixtures.

Derandomized (fixed seed), no example database, no deadline: the same cases every run.
The figures are printed by the last test (run pytest with -s to see them).
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.app import create_app
from cds_service.protocol.validation import response_errors

from ..security.issuer import REMOVE, FakeIssuer, insecure_settings
from ..security.issuer import auth_settings as make_auth_settings
from ..support.scenarios import load_scenarios

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
CAPTURES = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "real-clients" / "cds-hooks-sandbox"
SANDBOX_SEEDS = [
    json.loads(path.read_text(encoding="utf-8"))["request"]
    for path in sorted(CAPTURES.glob("*.json")) if path.name != "expected.json" and "feedback" not in path.name
]
SEEDS = [s.request for s in load_scenarios()] + SANDBOX_SEEDS
SERVICES = ["b12-neuropathy-patient-view", "b12-neuropathy-order-select", "b12-neuropathy-order-sign"]
FEEDBACK = {"feedback": [
    {"card": "0b8a8e2c-3a4a-4c1e-9d6b-1a2b3c4d5e6f", "outcome": "accepted", "acceptedSuggestions": [{"id": "a"}],
     "outcomeTimestamp": "2026-06-01T12:01:00Z"},
    {"card": "1b8a8e2c-3a4a-4c1e-9d6b-1a2b3c4d5e6f", "outcome": "overridden",
     "overrideReason": {"reason": {"code": "patient-declined", "system": "http://example.org"}, "userComment": "x"},
     "outcomeTimestamp": "2026-06-01T12:01:00Z"},
]}
CONTENT_TYPES = ["application/json", "application/fhir+json", "application/json; charset=utf-8", "text/plain",
                 "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "application/xml"]

STATS: Counter[str] = Counter()
FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


# --------------------------------------------------------------------------- strategies

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
# Hand-picked members that the service reads: the mutation often lands on these names.
interesting_keys = st.sampled_from(["resourceType", "entry", "resource", "link", "url", "relation", "search", "mode",
                                    "coding", "code", "system", "valueQuantity", "value", "unit", "subject",
                                    "reference", "medicationCodeableConcept", "effectiveDateTime", "status", "id",
                                    "dosageInstruction", "prefetch", "context", "draftOrders", "selections"])


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, prefix + (key,)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_paths(value, prefix + (index,)))
    return found


def _parent(document: Any, path: tuple) -> Any:
    for part in path[:-1]:
        document = document[part]
    return document


@st.composite
def mutated(draw: st.DrawFn, seeds: str) -> tuple[bytes, str]:
    """A real request with 1-4 mutations, serialised (deep nesting is spliced into the text)."""
    pool = SEEDS if seeds == "hook requests" else [FEEDBACK]
    document = copy.deepcopy(pool[draw(st.integers(0, len(pool) - 1))])
    prefetch = document.get("prefetch")
    if isinstance(prefetch, dict) and draw(st.integers(0, 3)) == 0:  # make the service fetch from the EHR
        for key in draw(st.lists(st.sampled_from(sorted(prefetch)), min_size=1, unique=True)):
            del prefetch[key]
    splices: dict[str, str] = {}
    for step in range(draw(st.integers(1, 4))):
        paths = _paths(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = _parent(document, path), path[-1]
        operation = draw(st.sampled_from(["replace", "replace", "number", "delete", "deep", "giant", "add", "wrap"]))
        if operation == "delete":
            del parent[last]
            continue
        if operation == "add" and isinstance(parent, dict):
            parent[draw(interesting_keys | st.text(max_size=8))] = draw(json_values)
            continue
        if operation == "replace":
            value: Any = draw(json_values)
        elif operation == "number":
            value = draw(st.integers(-5, 10**6) | st.floats(allow_nan=False, allow_infinity=False))
        elif operation == "wrap":
            value = [parent[last]] if draw(st.booleans()) else {"x": parent[last]}
        elif operation == "giant":
            value = draw(st.sampled_from(["a", "\u00e9", "\U0001F600", "\\"])) * draw(st.sampled_from([10_000, 200_000]))
        else:  # deep nesting: up to past orjson's 1024 limit (then it is malformed JSON, also a 400)
            depth = draw(st.sampled_from([50, 255, 600, 1000, 1030]))
            opener, closer = ('{"a":', "}") if draw(st.booleans()) else ("[", "]")
            marker = f"@@deep{step}@@"
            splices[f'"{marker}"'] = opener * depth + "1" + closer * depth
            value = marker
        parent[last] = value
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))  # stdlib: integers beyond 64 bits too
    for marker, replacement in splices.items():
        text = text.replace(marker, replacement, 1)
    return text.encode(), draw(st.sampled_from(CONTENT_TYPES[:3]) | st.sampled_from(CONTENT_TYPES))


@st.composite
def garbage(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["binary", "json", "truncated", "text"]))
    if kind == "binary":
        body = draw(st.binary(max_size=200))
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "truncated":
        whole = orjson.dumps(SEEDS[draw(st.integers(0, len(SEEDS) - 1))])
        body = whole[: draw(st.integers(0, len(whole) - 1))]
    else:
        body = draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    return body, draw(st.sampled_from(CONTENT_TYPES))


@st.composite
def fhir_behaviour(draw: st.DrawFn) -> tuple[int, bytes]:
    """What the EHR's FHIR server answers, for requests that make the service fetch."""
    status = draw(st.sampled_from([200, 200, 200, 401, 403, 404, 500, 503, 302]))
    body = draw(st.sampled_from([
        b"", b"not json", b"{}", b"[]", b'{"resourceType": "OperationOutcome"}',
        b'{"resourceType": "Bundle", "entry": 5}', b'{"resourceType": "Bundle", "entry": [5]}',
        b'{"resourceType": "Bundle", "link": [{"relation": "next", "url": "https://evil.example/x"}]}',
        b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Observation", "status": 5}}]}',
        b'{"resourceType": "Patient", "id": "p"}',
        b'{"resourceType": "Conformance", "fhirVersion": "1.0.2"}',
        b'{"resourceType": "CapabilityStatement", "fhirVersion": ["3.0.1"]}',
        b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "MedicationOrder", "id": "m", "status": "active",'
        b' "dateWritten": "2020-01-01", "patient": {"reference": "Patient/p"}, "dosageInstruction": {"doseQuantity": {"value": "1"}},'
        b' "medicationCodeableConcept": {"coding": {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": 310410}}}}]}',
        b'{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Condition", "id": "c", "clinicalStatus": "active",'
        b' "verificationStatus": ["confirmed", "x"], "code": [{"coding": [{"system": "http://snomed.info/sct", "code": "302226006"}]}]}}]}',
    ]) | st.binary(max_size=100))
    return status, body


# Older versions' names for what R4 calls (type, element): DSTU2 and STU3.
OLD_TYPES = {"MedicationRequest": ["MedicationOrder"], "ServiceRequest": ["ProcedureRequest", "DiagnosticOrder", "ReferralRequest"]}
OLD_NAMES = {"subject": "patient", "authoredOn": "dateWritten", "periodUnit": "periodUnits", "recordedDate": "dateRecorded",
             "effectiveDateTime": "effectiveTimeDateTime", "requester": "prescriber", "encounter": "context"}
ODD_TYPES = ["MedicationPrescription", "Foo", "medicationrequest", "", "Observation ", "Bundle", "OperationOutcome",
             "Patient\nX", 5, None, ["MedicationRequest"], {"a": 1}]


def _resources(document: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(document, dict):
        if isinstance(document.get("resourceType"), str) and document["resourceType"] != "Bundle":
            found.append(document)
        for value in document.values():
            found.extend(_resources(value))
    elif isinstance(document, list):
        for value in document:
            found.extend(_resources(value))
    return found


@st.composite
def versioned(draw: st.DrawFn) -> bytes:
    """A real request whose drafts and prefetch resources come in other versions and shapes."""
    document = copy.deepcopy(SEEDS[draw(st.integers(0, len(SEEDS) - 1))])
    resources = _resources(document)
    for _ in range(draw(st.integers(1, 6))):
        if not resources:
            break
        resource = draw(st.sampled_from(resources))
        operation = draw(st.sampled_from(["old type", "old names", "dosage", "object for list", "list for one",
                                          "odd type", "duplicate", "drop type"]))
        if operation == "old type" and str(resource.get("resourceType")) in OLD_TYPES:
            resource["resourceType"] = draw(st.sampled_from(OLD_TYPES[str(resource["resourceType"])]))
        elif operation == "old names":
            for new, old in OLD_NAMES.items():
                if new in resource and draw(st.booleans()):
                    resource[old] = resource.pop(new)
            for status in ("clinicalStatus", "verificationStatus"):
                concept = resource.get(status)
                if isinstance(concept, dict) and draw(st.booleans()):
                    resource[status] = ((concept.get("coding") or [{}])[0]).get("code", "active")
        elif operation == "dosage":
            for dosage in resource.get("dosageInstruction") or []:
                if isinstance(dosage, dict):
                    for dose_and_rate in dosage.pop("doseAndRate", None) or []:
                        dosage.update(dose_and_rate if isinstance(dose_and_rate, dict) else {})
                    repeat = (dosage.get("timing") or {}).get("repeat")
                    if isinstance(repeat, dict) and "periodUnit" in repeat:
                        repeat["periodUnits"] = repeat.pop("periodUnit")
        elif operation in ("object for list", "list for one", "duplicate"):
            keys = [key for key in resource if key not in ("resourceType", "id")]
            if keys:
                key = draw(st.sampled_from(sorted(keys)))
                value = resource[key]
                if operation == "object for list" and isinstance(value, list) and value:
                    resource[key] = value[0]
                elif operation == "list for one":
                    resource[key] = [value]
                else:
                    resource[key] = [value, value]
        elif operation == "odd type":
            resource["resourceType"] = draw(st.sampled_from(ODD_TYPES))
        elif operation == "drop type":
            resource.pop("resourceType", None)
    prefetch = document.get("prefetch")
    if isinstance(prefetch, dict) and draw(st.integers(0, 3)) == 0:  # fetched from a (maybe DSTU2) server
        for key in draw(st.lists(st.sampled_from(sorted(prefetch)), min_size=1, unique=True)):
            del prefetch[key]
    return json.dumps(document).encode()


# --------------------------------------------------------------------------- harness

@pytest.fixture(scope="module")
def client(knowledge):
    return create_app(insecure_settings(fhir_total_timeout=2.0), knowledge=knowledge, clock=lambda: NOW).test_client()


class FakeEhr:
    """Answers every FHIR request with the current example's behaviour (no network)."""

    def __init__(self) -> None:
        self.behaviour: tuple[int, bytes] = (500, b"")

    def __call__(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        STATS["fhir requests answered"] += 1
        status, body = self.behaviour
        headers = {"Content-Type": "application/fhir+json"}
        if status == 302:
            headers["Location"] = "https://elsewhere.example/fhir/Patient/1"
        return status, headers, body


@pytest.fixture(scope="module")
def ehr():
    fake = FakeEhr()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, re.compile(r".*"), callback=fake)
        yield fake


def check(response: Any, label: str, path: str = "") -> None:
    STATS["requests"] += 1
    STATS[f"status {response.status_code // 100}xx"] += 1
    assert response.status_code < 500, f"{label}: {response.status_code} {response.get_data(as_text=True)[:300]}"
    if response.status_code >= 400 or response.data:
        body = response.get_json(silent=True)
        assert isinstance(body, dict), f"{label}: not a JSON object: {response.get_data(as_text=True)[:200]}"
    if response.status_code == 200 and path.startswith("/cds-services/") and not path.endswith("/feedback"):
        assert response_errors(response.get_json()) == [], label


# --------------------------------------------------------------------------- properties

@settings(FUZZ, max_examples=3000)
@given(case=mutated("hook requests"), service=st.sampled_from(SERVICES), answer=fhir_behaviour())
def test_mutated_hook_requests_never_5xx(client, ehr, case, service, answer) -> None:
    body, content_type = case
    ehr.behaviour = answer
    path = f"/cds-services/{service}"
    check(client.post(path, data=body, content_type=content_type), "hook", path)


@settings(FUZZ, max_examples=4000)
@given(body=versioned(), answer=fhir_behaviour())
def test_other_versions_and_shapes_never_5xx(client, ehr, body, answer) -> None:
    ehr.behaviour = answer
    path = f"/cds-services/b12-neuropathy-{json.loads(body)['hook']}"  # the matching service: the reader is what is fuzzed
    response = client.post(path, data=body, content_type="application/json")
    STATS[f"versioned requests {response.status_code}"] += 1
    check(response, "versioned", path)


@settings(FUZZ, max_examples=1000)
@given(case=garbage(), path=st.sampled_from([f"/cds-services/{s}" for s in SERVICES]
                                            + [f"/cds-services/{s}/feedback" for s in SERVICES]))
def test_garbage_bodies_never_5xx(client, ehr, case, path) -> None:
    body, content_type = case
    check(client.post(path, data=body, content_type=content_type), "garbage", path)


@settings(FUZZ, max_examples=700)
@given(case=mutated("feedback"), service=st.sampled_from(SERVICES + ["no-such-service"]))
def test_mutated_feedback_never_5xx(client, ehr, case, service) -> None:
    body, content_type = case
    path = f"/cds-services/{service}/feedback"
    check(client.post(path, data=body, content_type=content_type), "feedback", path)


@settings(FUZZ, max_examples=500)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]),
    path=st.sampled_from(["/cds-services", "/cds-services/", "/cds-services/x", "/cds-services/a/b/c", "/healthz",
                          "/", "/cds-services/b12-neuropathy-order-select/feedback/x"])
    | st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="?#%"), max_size=30).map(lambda t: "/cds-services/" + t),
    headers=st.dictionaries(st.sampled_from(["Origin", "Access-Control-Request-Method", "Accept", "Authorization",
                                             "Access-Control-Request-Headers", "X-Forwarded-Host"]),
                            st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40), max_size=3),
)
def test_methods_paths_and_headers_never_5xx(client, method, path, headers) -> None:
    response = client.open(path, method=method, headers=headers, data=b"{}", content_type="application/json")
    STATS["requests"] += 1
    STATS[f"status {response.status_code // 100}xx"] += 1
    assert response.status_code < 500, f"{method} {path}: {response.status_code}"


# --------------------------------------------------------------------------- authentication

FUZZ_ISSUER = FakeIssuer(iss="https://fuzz-ehr.example")
DISCOVERY_AUD = "http://localhost/cds-services"


@pytest.fixture(scope="module")
def auth_client(knowledge, tmp_path_factory):
    settings_ = make_auth_settings(tmp_path_factory.mktemp("fuzz-auth"), FUZZ_ISSUER)
    return create_app(settings_, knowledge=knowledge, clock=lambda: NOW).test_client()


claim_values = json_values | st.sampled_from([DISCOVERY_AUD, [DISCOVERY_AUD], FUZZ_ISSUER.iss, 0, -1, 2**63, 1e300, ""])


@settings(FUZZ, max_examples=800)
@given(
    claims=st.dictionaries(st.sampled_from(["iss", "aud", "exp", "iat", "jti", "nbf", "tenant", "sub"]),
                           claim_values | st.just(REMOVE), max_size=4),
    headers=st.dictionaries(st.sampled_from(["typ", "kid", "jku", "crit", "x5u", "cty", "b64"]),
                            json_values | st.just(REMOVE), max_size=2),
    alg=st.sampled_from(["ES384", "ES384", "ES384", "ES256", "ES512"]),
)
def test_signed_tokens_with_random_claims_never_5xx(auth_client, claims, headers, alg) -> None:
    """Tokens signed with the trusted key but random claims and headers: 200 or 401, nothing else."""
    try:
        token = FUZZ_ISSUER.token(DISCOVERY_AUD, claims=claims, headers=headers, alg=alg)
    except (TypeError, ValueError, OverflowError):
        return  # PyJWT cannot encode these claims: nothing to send
    except Exception as exc:  # e.g. PyJWT refusing a header; still nothing to send
        if type(exc).__module__.startswith("jwt"):
            return
        raise
    response = auth_client.get("/cds-services", headers={"Authorization": f"Bearer {token}"})
    STATS["requests"] += 1
    STATS["signed tokens"] += 1
    STATS[f"auth {response.status_code}"] += 1
    assert response.status_code in (200, 401), response.status_code
    if response.status_code == 401:
        assert response.get_json() == {"error": "unauthorized"}


@settings(FUZZ, max_examples=500)
@given(value=st.one_of(
    st.text(max_size=300),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", max_size=400),
    st.lists(st.binary(max_size=60).map(lambda b: __import__("base64").urlsafe_b64encode(b).decode().rstrip("=")),
             min_size=2, max_size=4).map(".".join),
    st.sampled_from(["Bearer", "Bearer ", "bearer x.y.z", "Basic dXNlcjpwYXNz", "Bearer " + "a" * 9000,
                     "Bearer eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.", "Bearer ..", "Bearer a.b.c.d.e"]),
))
def test_random_authorization_headers_never_5xx(auth_client, value) -> None:
    try:
        response = auth_client.get("/cds-services", headers={"Authorization": value if value.startswith(("Bearer", "Basic", "bearer")) else f"Bearer {value}"})
    except ValueError:
        return  # werkzeug refuses to send a header with newlines: a client could not either
    STATS["requests"] += 1
    STATS["garbage tokens"] += 1
    assert response.status_code == 401
    assert response.get_json() == {"error": "unauthorized"}


def test_fuzz_totals(record_property) -> None:
    """Runs last: report the figures and check that thousands of requests were sent."""
    if STATS["requests"] == 0:
        pytest.skip("run with the fuzz tests above")
    figures = ", ".join(f"{name}: {count}" for name, count in sorted(STATS.items()))
    print(f"\nfuzz figures: {figures}")
    record_property("fuzz_requests", STATS["requests"])
    assert STATS["requests"] >= 10_000
    assert not any(name.startswith("status 5") for name in STATS)
