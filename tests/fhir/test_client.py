"""Tests for the FHIR prefetch-fallback client (cds_service.fhir.client)."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import time
import traceback
from collections.abc import Iterator

import pytest
import requests
import responses

from cds_service.fhir.client import FetchLimits, FhirClient, FhirFetchError

BASE = "https://ehr.example/fhir/r4"
TOKEN = "tok-SECRET-4f9a8b7c6d"
PATIENT_ID = "pat-98765"


def bundle(resources: list[dict], next_url: str | None = None, outcomes: int = 0) -> dict:
    entries: list[dict] = [{"resource": r, "search": {"mode": "match"}} for r in resources]
    entries += [
        {"resource": {"resourceType": "OperationOutcome", "issue": []}, "search": {"mode": "outcome"}}
        for _ in range(outcomes)
    ]
    links = [{"relation": "self", "url": "ignored"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


def obs(i: int) -> dict:
    return {"resourceType": "Observation", "id": f"o{i}"}


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def reason_of(client: FhirClient, query: str, token: str | None = TOKEN, base: str = BASE) -> str:
    with pytest.raises(FhirFetchError) as info:
        client.fetch(base, query, token)
    return info.value.reason


# --- reads and searches ----------------------------------------------------------------------


def test_read_returns_resource_with_headers_and_timeouts(rsps):
    patient = {"resourceType": "Patient", "id": PATIENT_ID}
    rsps.get(f"{BASE}/Patient/{PATIENT_ID}", json=patient)
    assert FhirClient().fetch(BASE, f"Patient/{PATIENT_ID}", TOKEN) == [patient]
    call = rsps.calls[0]
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert call.request.headers["Accept"] == "application/fhir+json"
    connect, read = call.request.req_kwargs["timeout"]
    assert 0 < connect <= 2.0 and 0 < read <= 5.0
    assert call.request.req_kwargs["stream"] is True


def test_no_authorization_header_without_token(rsps):
    rsps.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    FhirClient().fetch(BASE, "Patient/1", None)
    FhirClient().fetch(BASE, "Patient/1", "")
    assert all("Authorization" not in c.request.headers for c in rsps.calls)


@pytest.mark.parametrize(
    ("base", "query", "expected"),
    [
        ("https://ehr.example/fhir/r4", "Patient/1", "https://ehr.example/fhir/r4/Patient/1"),
        ("https://ehr.example/fhir/r4/", "Patient/1", "https://ehr.example/fhir/r4/Patient/1"),
        ("https://ehr.example/fhir/r4/", "/Patient/1", "https://ehr.example/fhir/r4/Patient/1"),
        ("https://ehr.example", "Patient/1", "https://ehr.example/Patient/1"),
        ("http://localhost:8080/baseR4", "Patient/1", "http://localhost:8080/baseR4/Patient/1"),
    ],
)
def test_base_url_join(rsps, base, query, expected):
    rsps.get(expected, json={"resourceType": "Patient", "id": "1"})
    assert FhirClient().fetch(base, query, None)[0]["id"] == "1"
    assert rsps.calls[0].request.url == expected


def test_single_page_search_skips_outcome_entries(rsps, caplog):
    caplog.set_level(logging.DEBUG)
    query = f"Observation?patient={PATIENT_ID}&code=2132-9,14685-2"
    rsps.get(f"{BASE}/{query}", json=bundle([obs(1), obs(2)], outcomes=1))
    assert FhirClient().fetch(BASE, query, TOKEN) == [obs(1), obs(2)]
    assert any("outcome" in r.getMessage() for r in caplog.records)


def test_empty_search_returns_empty_list(rsps):
    rsps.get(f"{BASE}/Observation?patient=1", json={"resourceType": "Bundle", "type": "searchset"})
    assert FhirClient().fetch(BASE, "Observation?patient=1", TOKEN) == []


def test_multi_page_search_follows_absolute_next_links_with_token(rsps):
    rsps.get(f"{BASE}/Observation?patient=1", json=bundle([obs(1)], f"{BASE}/Observation?patient=1&_page=2"))
    rsps.get(f"{BASE}/Observation?patient=1&_page=2", json=bundle([obs(2)], f"{BASE}?_getpages=abc&_offset=2"))
    rsps.get(f"{BASE}?_getpages=abc&_offset=2", json=bundle([obs(3)]))
    assert FhirClient().fetch(BASE, "Observation?patient=1", TOKEN) == [obs(1), obs(2), obs(3)]
    assert len(rsps.calls) == 3
    assert all(c.request.headers["Authorization"] == f"Bearer {TOKEN}" for c in rsps.calls)


def test_relative_next_link_resolves_against_base(rsps):
    rsps.get(f"{BASE}/Observation?patient=1", json=bundle([obs(1)], "Observation?patient=1&_page=2"))
    rsps.get(f"{BASE}/Observation?patient=1&_page=2", json=bundle([obs(2)]))
    assert FhirClient().fetch(BASE, "Observation?patient=1", TOKEN) == [obs(1), obs(2)]
    assert rsps.calls[1].request.url == f"{BASE}/Observation?patient=1&_page=2"


def test_relative_next_link_resolves_against_base_not_current_page(rsps):
    first = f"{BASE}/Patient/1/$everything"
    rsps.get(first, json=bundle([obs(1)], "Patient/1/$everything?_page=2"))
    rsps.get(f"{first}?_page=2", json=bundle([obs(2)]))
    assert FhirClient().fetch(BASE, "Patient/1/$everything", TOKEN) == [obs(1), obs(2)]
    assert rsps.calls[1].request.url == f"{first}?_page=2"


def test_same_origin_redirect_followed_and_cross_origin_redirect_refused(rsps):
    rsps.get(f"{BASE}/Patient/1", status=302, headers={"Location": "/fhir/r4/Patient/1/_history/3"})
    rsps.get(f"{BASE}/Patient/1/_history/3", json={"resourceType": "Patient", "id": "1"})
    assert FhirClient().fetch(BASE, "Patient/1", TOKEN)[0]["id"] == "1"

    rsps.get(f"{BASE}/Patient/2", status=302, headers={"Location": "https://evil.example/steal"})
    evil = rsps.get("https://evil.example/steal", json={"resourceType": "Patient", "id": "2"})
    assert reason_of(FhirClient(), "Patient/2") == "cross-origin-link"
    assert evil.call_count == 0


def test_cookies_from_the_ehr_are_not_replayed(rsps):
    rsps.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"}, headers={"Set-Cookie": "sid=abc"})
    client = FhirClient()
    client.fetch(BASE, "Patient/1", TOKEN)
    client.fetch(BASE, "Patient/1", "other-user-token")
    assert "Cookie" not in rsps.calls[1].request.headers


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (requests.exceptions.ConnectTimeout(f"{BASE}/Patient/{PATIENT_ID}"), "timeout"),
        (requests.exceptions.ReadTimeout(f"{BASE}/Patient/{PATIENT_ID}"), "timeout"),
        (requests.exceptions.ConnectionError(f"{BASE}/Patient/{PATIENT_ID}"), "connection"),
    ],
)
def test_transport_errors(rsps, exc, reason):
    rsps.get(f"{BASE}/Patient/{PATIENT_ID}", body=exc)
    with pytest.raises(FhirFetchError) as info:
        FhirClient().fetch(BASE, f"Patient/{PATIENT_ID}", TOKEN)
    assert info.value.reason == reason
    assert info.value.resource_type == "Patient"
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert PATIENT_ID not in str(info.value) and "ehr.example" not in str(info.value)


@pytest.mark.parametrize(
    ("status", "reason"),
    [(401, "http-401"), (403, "http-403"), (404, "http-404"), (410, "http-4xx"), (500, "http-5xx"), (503, "http-5xx")],
)
def test_http_status_mapping(rsps, status, reason):
    rsps.get(f"{BASE}/Patient/1", status=status, json={"resourceType": "OperationOutcome", "issue": []})
    assert reason_of(FhirClient(), "Patient/1") == reason


@pytest.mark.parametrize(
    ("query", "body", "reason"),
    [
        ("Patient/1", "<html>login</html>", "invalid-json"),
        ("Patient/1", "", "invalid-json"),
        ("Patient/1", '{"resourceType": "OperationOutcome", "issue": []}', "operation-outcome"),
        ("Observation?patient=1", '{"resourceType": "OperationOutcome", "issue": []}', "operation-outcome"),
        ("Observation?patient=1", '{"resourceType": "Patient", "id": "1"}', "unexpected-resource"),
        ("Patient/1", '{"resourceType": "Observation", "id": "1"}', "unexpected-resource"),
        ("Patient/1", "[1, 2]", "unexpected-resource"),
        ("Observation?patient=1", '{"resourceType": "Bundle", "entry": {"x": 1}}', "unexpected-resource"),
    ],
)
def test_body_errors(rsps, query, body, reason):
    rsps.get(f"{BASE}/{query}", body=body, content_type="application/fhir+json")
    assert reason_of(FhirClient(), query) == reason


def test_endless_next_link_to_itself_stops(rsps):
    url = f"{BASE}/Observation?patient=1"
    rsps.get(url, json=bundle([obs(1)], url))
    assert reason_of(FhirClient(), "Observation?patient=1") == "too-many-pages"
    assert len(rsps.calls) == 1  # the loop is recognised on the first repeat, not after max_pages


def test_distinct_pages_beyond_max_pages(rsps):
    def page(request):
        n = int(request.params.get("_page", "1"))
        return 200, {}, json.dumps(bundle([obs(n)], f"{BASE}/Observation?patient=1&_page={n + 1}"))

    rsps.add_callback(responses.GET, f"{BASE}/Observation", callback=page)
    client = FhirClient(FetchLimits(max_pages=3))
    assert reason_of(client, "Observation?patient=1") == "too-many-pages"
    assert len(rsps.calls) == 3


def test_too_many_entries(rsps):
    rsps.get(f"{BASE}/Observation?patient=1", json=bundle([obs(1), obs(2)], f"{BASE}/Observation?patient=1&p=2"))
    rsps.get(f"{BASE}/Observation?patient=1&p=2", json=bundle([obs(3), obs(4)]))
    assert reason_of(FhirClient(FetchLimits(max_entries=3)), "Observation?patient=1") == "too-many-entries"
    assert len(FhirClient(FetchLimits(max_entries=4)).fetch(BASE, "Observation?patient=1", TOKEN)) == 4


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/fhir/r4/Observation?patient=1&_page=2",
        "http://ehr.example/fhir/r4/Observation?patient=1&_page=2",  # scheme differs
        "https://ehr.example:8443/fhir/r4/Observation?patient=1&_page=2",  # port differs
        "//evil.example/fhir/r4/Observation?_page=2",  # scheme-relative
        "https://ehr.example@evil.example/Observation?_page=2",  # userinfo trick
        "https://evil.example\\@ehr.example/Observation?_page=2",  # parser differential
    ],
)
def test_cross_origin_next_link_refused_without_request(rsps, next_url):
    rsps.get(f"{BASE}/Observation?patient=1", json=bundle([obs(1)], next_url))
    evil = [
        rsps.get(url, json=bundle([obs(2)]))
        for url in (
            "https://evil.example/fhir/r4/Observation",
            "http://ehr.example/fhir/r4/Observation",
            "https://ehr.example:8443/fhir/r4/Observation",
            "https://evil.example/Observation",
        )
    ]
    assert reason_of(FhirClient(), "Observation?patient=1") == "cross-origin-link"
    assert len(rsps.calls) == 1
    assert all(r.call_count == 0 for r in evil)


def test_explicit_default_port_is_same_origin(rsps):
    rsps.get(f"{BASE}/Observation?patient=1", json=bundle([obs(1)], "https://ehr.example:443/fhir/r4/Observation?p=2"))
    rsps.get("https://ehr.example:443/fhir/r4/Observation?p=2", json=bundle([obs(2)]))
    assert FhirClient().fetch(BASE, "Observation?patient=1", TOKEN) == [obs(1), obs(2)]


def test_oversized_body_streamed(rsps):
    # No Content-Length: the streaming limit has to catch it.
    rsps.get(f"{BASE}/Observation?patient=1", json=bundle([obs(i) for i in range(200)]))
    assert reason_of(FhirClient(FetchLimits(max_response_bytes=1000)), "Observation?patient=1") == "too-large"


def test_oversized_body_declared(rsps):
    rsps.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1", "x": "y" * 5000},
             auto_calculate_content_length=True)
    assert reason_of(FhirClient(FetchLimits(max_response_bytes=1000)), "Patient/1") == "too-large"
    assert FhirClient(FetchLimits(max_response_bytes=10_000)).fetch(BASE, "Patient/1", None)[0]["id"] == "1"


@pytest.mark.parametrize(
    "base", ["ftp://ehr.example/fhir", "file:///etc/passwd", "ehr.example/fhir", "", "https://", "https://u:p@ehr.example/"]
)
def test_bad_base_url_makes_no_request(rsps, base):
    assert reason_of(FhirClient(), "Patient/1", base=base) == "connection"
    assert len(rsps.calls) == 0


def test_malformed_token_and_query_make_no_request(rsps):
    assert reason_of(FhirClient(), "Patient/1", token="abc\r\nX-Evil: 1") == "connection"
    assert reason_of(FhirClient(), "Patient/1", token="abc def") == "connection"
    assert reason_of(FhirClient(), "?patient=1") == "connection"
    assert len(rsps.calls) == 0


# --- fetch_many --------------------------------------------------------------------------------


def test_fetch_many_mixed_results(rsps):
    rsps.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    rsps.get(f"{BASE}/Observation?patient=1", json=bundle([obs(1)]))
    rsps.get(f"{BASE}/Condition?patient=1", status=503)
    rsps.get(f"{BASE}/MedicationRequest?patient=1", body="not json")
    queries = {
        "patient": "Patient/1",
        "labs": "Observation?patient=1",
        "conditions": "Condition?patient=1",
        "meds": "MedicationRequest?patient=1",
        "bad": "?nonsense",
    }
    result = FhirClient().fetch_many(BASE, queries, TOKEN)
    assert list(result) == list(queries)
    assert result["patient"] == [{"resourceType": "Patient", "id": "1"}]
    assert result["labs"] == [obs(1)]
    assert isinstance(result["conditions"], FhirFetchError) and result["conditions"].reason == "http-5xx"
    assert isinstance(result["meds"], FhirFetchError) and result["meds"].reason == "invalid-json"
    assert isinstance(result["bad"], FhirFetchError) and result["bad"].reason == "connection"


def test_fetch_many_never_raises_for_bad_base():
    result = FhirClient().fetch_many("gopher://x", {"a": "Patient/1"}, TOKEN)
    assert result["a"].reason == "connection"
    assert FhirClient().fetch_many(BASE, {}, TOKEN) == {}


class _Server:
    """Real ThreadingHTTPServer: sleeps per request and records the peak of concurrent requests."""

    def __init__(self, delay: float, slow_delay: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.release = threading.Event()  # lets slow handlers finish at teardown
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer.lock:
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    outer.release.wait(slow_delay if self.path.startswith("/fhir/Slow") else delay)
                    body = json.dumps({"resourceType": "Patient", "id": "1"}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/fhir+json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # client gave up (timeout/deadline)
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def test_fetch_many_runs_concurrently():
    with _Server(delay=0.2) as server:
        queries = {f"k{i}": f"Patient/{i}" for i in range(4)}
        result = FhirClient(FetchLimits(allow_private_addresses=True)).fetch_many(server.base, queries, TOKEN)
    assert all(r == [{"resourceType": "Patient", "id": "1"}] for r in result.values()), result
    assert server.max_in_flight >= 2


def test_fetch_many_deadline_returns_slow_keys_as_errors():
    with _Server(delay=0.0, slow_delay=10.0) as server:
        client = FhirClient(FetchLimits(allow_private_addresses=True, total_timeout=0.5, read_timeout=5.0))
        queries = {"fast": "Patient/1", "slow1": "SlowThing/1", "slow2": "SlowThing?x=1"}
        result = client.fetch_many(server.base, queries, TOKEN)
    assert result["fast"] == [{"resourceType": "Patient", "id": "1"}]
    for key in ("slow1", "slow2"):
        assert isinstance(result[key], FhirFetchError)
        assert result[key].reason in ("deadline", "timeout")
        assert result[key].resource_type == "SlowThing"


def test_fetch_many_deadline_cancels_queued_queries():
    # One worker, slow server: the queued second query must not run after the deadline.
    with _Server(delay=0.0, slow_delay=10.0) as server:
        client = FhirClient(FetchLimits(allow_private_addresses=True, total_timeout=0.3, max_workers=1))
        started = time.monotonic()
        result = client.fetch_many(server.base, {"a": "SlowThing/1", "b": "SlowThing/2"}, None)
        elapsed = time.monotonic() - started
    assert {r.reason for r in result.values()} <= {"deadline", "timeout"}
    # The deadline ends the call: the blocked read is woken, nothing waits for the cancelled query.
    assert elapsed < 0.3 + 1.5, f"took {elapsed:.2f} s"


@pytest.mark.parametrize(
    ("content_length", "reason"),
    [
        # Headers then a stall: requests raises ConnectionError(ReadTimeoutError) mid-body.
        (1000, "timeout"),
        # A declared size over the limit is refused before reading (else this would time out).
        (10**9, "too-large"),
    ],
)
def test_stalled_body(content_length, reason):
    release = threading.Event()

    class Stall(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                self.send_response(200)
                self.send_header("Content-Length", str(content_length))
                self.end_headers()
                self.wfile.write(b'{"resourceType": ')
                self.wfile.flush()
            except OSError:
                pass
            release.wait(5)

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = FhirClient(FetchLimits(allow_private_addresses=True, read_timeout=0.3, max_response_bytes=10_000))
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        assert reason_of(client, "Patient/1", base=base) == reason
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()


def test_fetch_many_returns_when_a_host_name_lookup_hangs(monkeypatch):
    # A lookup is the one step no socket timeout or shutdown reaches: fetch_many still returns
    # shortly after its deadline (waiting at most connect_timeout + 1 s for the thread).
    release = threading.Event()

    def hanging_lookup(*args, **kwargs):
        release.wait(10)
        raise OSError("gave up")

    monkeypatch.setattr("cds_service.fhir.egress.socket.getaddrinfo", hanging_lookup)
    client = FhirClient(FetchLimits(total_timeout=0.3, connect_timeout=0.5))
    try:
        started = time.monotonic()
        result = client.fetch_many("http://ehr.invalid/fhir", {"a": "Patient/1"}, TOKEN)
        assert time.monotonic() - started < 0.3 + 0.5 + 1.0 + 0.5
        assert result["a"].reason == "deadline"
    finally:
        release.set()


# --- token and PHI hygiene -----------------------------------------------------------------------


def test_no_token_or_patient_id_in_logs_or_errors(rsps, caplog):
    caplog.set_level(logging.DEBUG)
    q = f"Observation?patient={PATIENT_ID}&code=2132-9"
    rsps.get(f"{BASE}/Patient/{PATIENT_ID}", status=401, json={"issue": [{"diagnostics": f"bad token {TOKEN}"}]})
    rsps.get(f"{BASE}/Encounter/{PATIENT_ID}",
             body=requests.exceptions.ReadTimeout(f"{BASE}/Encounter/{PATIENT_ID}?token={TOKEN}"))
    rsps.get(f"{BASE}/Condition?patient={PATIENT_ID}", body=f"<html>{PATIENT_ID} {TOKEN}</html>")
    rsps.get(f"{BASE}/Coverage?patient={PATIENT_ID}",
             body=requests.exceptions.ConnectionError(f"{BASE}/Coverage?patient={PATIENT_ID}&t={TOKEN}"))
    rsps.get(f"{BASE}/{q}", json=bundle([obs(1)], f"https://evil.example/?patient={PATIENT_ID}&t={TOKEN}"))

    errors: list[FhirFetchError] = []
    for query in (
        f"Patient/{PATIENT_ID}", f"Encounter/{PATIENT_ID}", f"Condition?patient={PATIENT_ID}",
        f"Coverage?patient={PATIENT_ID}", q,
    ):
        with pytest.raises(FhirFetchError) as info:
            FhirClient().fetch(BASE, query, TOKEN)
        errors.append(info.value)
    many = FhirClient().fetch_many(
        BASE, {"a": f"Patient/{PATIENT_ID}", "b": f"Encounter/{PATIENT_ID}", "c": q}, TOKEN
    )
    errors += [v for v in many.values() if isinstance(v, FhirFetchError)]

    assert [e.reason for e in errors] == [
        "http-401", "timeout", "invalid-json", "connection", "cross-origin-link",  # fetch()
        "http-401", "timeout", "cross-origin-link",  # fetch_many()
    ]
    texts = [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    texts += [str(e) for e in errors] + [repr(e) for e in errors]
    texts += ["".join(traceback.format_exception(e)) for e in errors]
    for text in texts:
        assert TOKEN not in text
        assert PATIENT_ID not in text
        assert "evil.example" not in text and BASE not in text
    # One warning per failed query, naming the resource type and the reason.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == len(errors)
    assert any("Patient" in w and "http-401" in w for w in warnings)
    assert any("Observation" in w and "cross-origin-link" in w for w in warnings)
    assert all(e.__context__ is None and e.__cause__ is None for e in errors)


def test_error_message_names_resource_type_and_reason():
    err = FhirFetchError("http-5xx", "Observation", "HTTP 503")
    assert err.reason == "http-5xx"
    assert "Observation" in str(err) and "http-5xx" in str(err)


# --- the server's FHIR version ------------------------------------------------------------


def test_queries_are_renamed_for_a_dstu2_server_whose_metadata_is_read_once(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{BASE}/metadata", json={"resourceType": "Conformance", "fhirVersion": "1.0.2"})
    rsps.get(f"{BASE}/MedicationOrder", json=bundle([{"resourceType": "MedicationOrder", "id": "m1"}]))
    rsps.get(f"{BASE}/DiagnosticOrder", json=bundle([]))
    rsps.get(f"{BASE}/Condition", json=bundle([]))
    client = FhirClient()
    queries = {"meds": f"MedicationRequest?patient={PATIENT_ID}", "labs": f"ServiceRequest?patient={PATIENT_ID}",
               "conditions": f"Condition?patient={PATIENT_ID}"}
    for _ in range(2):
        results = client.fetch_many(BASE, queries, TOKEN, in_server_release=True)
        assert results["meds"] == [{"resourceType": "MedicationOrder", "id": "m1"}]
        assert results["labs"] == [] and results["conditions"] == []
    paths = [call.request.path_url.split("?")[0].rsplit("/", 1)[1] for call in rsps.calls]
    assert paths.count("metadata") == 1  # remembered for the second call
    assert "MedicationRequest" not in paths and "ServiceRequest" not in paths


@pytest.mark.parametrize("declared, renamed", [("3.0.1", "ProcedureRequest"), ("4.0.1", "ServiceRequest"), ("5.0.0", "ServiceRequest")])
def test_an_stu3_server_gets_procedure_requests_and_r4_or_later_the_r4_names(
    rsps: responses.RequestsMock, declared: str, renamed: str
) -> None:
    rsps.get(f"{BASE}/metadata", json={"resourceType": "CapabilityStatement", "fhirVersion": declared})
    rsps.get(f"{BASE}/{renamed}", json=bundle([]))
    assert FhirClient().fetch_many(BASE, {"labs": "ServiceRequest?patient=1"}, TOKEN, in_server_release=True) == {"labs": []}


def test_unreadable_metadata_means_r4_and_is_asked_again_later(rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch) -> None:
    rsps.get(f"{BASE}/metadata", status=500)
    rsps.get(f"{BASE}/MedicationRequest", json=bundle([]))
    client = FhirClient()
    assert client.fetch_many(BASE, {"meds": "MedicationRequest?patient=1"}, TOKEN, in_server_release=True) == {"meds": []}
    assert client.fetch_many(BASE, {"meds": "MedicationRequest?patient=1"}, TOKEN, in_server_release=True) == {"meds": []}
    metadata_calls = [call for call in rsps.calls if call.request.path_url.endswith("/metadata")]
    assert len(metadata_calls) == 1  # within the retry minute: not asked again
    import cds_service.fhir.client as client_module

    monkeypatch.setattr(client_module, "_RELEASE_RETRY", -1.0)  # as if each minute had passed
    other = FhirClient()
    for _ in range(2):
        other.fetch_many(BASE, {"meds": "MedicationRequest?patient=1"}, TOKEN, in_server_release=True)
    assert len([call for call in rsps.calls if call.request.path_url.endswith("/metadata")]) == 3


# --- the byte budget of one call (issue 11) ------------------------------------------------------


def test_the_byte_budget_is_shared_by_all_queries_of_a_call(rsps):
    page = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": obs(i)} for i in range(40)]}
    size = len(json.dumps(page))
    rsps.add(responses.GET, f"{BASE}/Observation", json=page)
    rsps.add(responses.GET, f"{BASE}/Condition", json=page)
    queries = {"a": "Observation?patient=1", "b": "Condition?patient=1"}
    fits = FhirClient(FetchLimits(max_call_bytes=2 * size + 10)).fetch_many(BASE, queries, TOKEN)
    assert all(isinstance(result, list) for result in fits.values())
    over = FhirClient(FetchLimits(max_call_bytes=int(size * 1.5), max_workers=1)).fetch_many(BASE, queries, TOKEN)
    assert [r.reason for r in over.values() if isinstance(r, FhirFetchError)] == ["too-large"]  # each alone fits


def test_paging_links_must_stay_under_the_base_path(rsps):
    rsps.add(responses.GET, f"{BASE}/Observation", json={
        "resourceType": "Bundle", "link": [{"relation": "next", "url": "https://ehr.example/admin/export?page=2"}], "entry": []})
    assert reason_of(FhirClient(), "Observation?patient=1") == "cross-origin-link"
    assert all("/admin" not in call.request.url for call in rsps.calls)
