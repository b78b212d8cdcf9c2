"""The attacks of issue 11 against a real server on loopback: SSRF, a dripping FHIR server,
oversized work. Each is bounded in count and time; every server is on 127.0.0.1.

* SSRF: with the default address rule, a fhirServer on loopback is refused even when the
  issuer lists it, the stand-in never sees a request, and the 412 says nothing about the network.
* Drip: 50 calls against a FHIR server that drips a byte every 0.1 s forever; afterwards the
  workers hold no more threads or file descriptors than before.
* Work: 50,000 Observations (under the body limit) get a 422 JSON at once; five 20 MB FHIR pages
  get a 422 JSON and leave the workers' memory near where it was.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
import requests

from ..support.server import running_service
from ..test_wire import rolled
from .issuer import FakeIssuer, write_issuers_file

CLIENT = FakeIssuer(iss="https://perimeter-test-ehr.example")
SERVICE = "/cds-services/b12-neuropathy-patient-view"
PAGE_BYTES = 20 * 1024 * 1024


class HostileFhir:
    """/drip/...: headers, then a byte every 0.1 s forever; /big/...: 20 MB pages, five of them,
    sent without Content-Length; /ok/...: an empty Bundle. Counts what it was asked."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                outer.requests.append(self.path)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/fhir+json")
                    self.end_headers()
                    if self.path.startswith("/drip/"):
                        self.wfile.write(b'{"resourceType": "Bundle", "entry": [')
                        while not outer.stop.wait(0.1):
                            self.wfile.write(b" ")
                            self.wfile.flush()
                    elif self.path.startswith("/big/"):
                        self._big_page()
                    elif "/Patient/" in self.path:
                        self.wfile.write(b'{"resourceType": "Patient", "id": "p"}')
                    elif self.path.endswith("/metadata"):
                        self.wfile.write(b'{"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}')
                    else:
                        self.wfile.write(b'{"resourceType": "Bundle", "type": "searchset"}')
                except OSError:
                    pass

            def _big_page(self) -> None:
                page = int(self.path.rsplit("page=", 1)[1]) if "page=" in self.path else 0
                link = f'"link": [{{"relation": "next", "url": "http://127.0.0.1:{outer.port}/big/fhir/Observation?page={page + 1}"}}], ' if page < 4 else ""
                self.wfile.write(f'{{"resourceType": "Bundle", {link}"entry": ['.encode())
                entry = b'{"resource": {"resourceType": "Observation", "status": "final", "note": [{"text": "' + b"x" * 1000 + b'"}]}},'
                for _ in range(PAGE_BYTES // len(entry)):
                    self.wfile.write(entry)
                self.wfile.write(b'{"resource": {"resourceType": "Observation", "status": "final"}}]}')

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def fhir() -> Iterator[HostileFhir]:
    server = HostileFhir()
    yield server
    server.close()


def environment(directory: Path, **extra: str) -> dict[str, str]:
    issuers = write_issuers_file(directory / "issuers.json", CLIENT)
    return {"CDS_TRUSTED_ISSUERS": str(issuers), "CDS_STATE_DIR": str(directory / "state"), "CDS_LOG_LEVEL": "WARNING",
            "CDS_ALLOW_HTTP_FHIR_SERVER": "true", **extra}


@pytest.fixture(scope="module")
def strict_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The default address rule: no loopback or private FHIR servers."""
    directory = tmp_path_factory.mktemp("strict")
    with running_service(environment(directory), directory / "server.log") as url:
        yield url, directory / "server.log"


@pytest.fixture(scope="module")
def dev_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Loopback FHIR servers allowed (development), a 1 s FHIR deadline."""
    directory = tmp_path_factory.mktemp("dev")
    env = environment(directory, CDS_ALLOW_PRIVATE_FHIR_ADDRESSES="true", CDS_FHIR_TOTAL_TIMEOUT="1", CDS_FHIR_READ_TIMEOUT="0.5")
    with running_service(env, directory / "server.log") as url:
        yield url


def post(url: str, body: Any, timeout: float = 60) -> requests.Response:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return requests.post(url + SERVICE, data=data, timeout=timeout,
                         headers={**CLIENT.headers(url + SERVICE), "Content-Type": "application/json"})


def without_prefetch(fhir_server: str) -> dict:
    body = rolled("maintenance-overdue/overdue-92-days-positive")
    del body["prefetch"]
    body["fhirServer"] = fhir_server
    return body


def workers(url: str) -> list[psutil.Process]:
    """The worker processes of the `cds-service serve` listening at ``url`` (children of its main process)."""
    wanted = f"--port {url.rsplit(':', 1)[1]} "
    mains = [p for p in psutil.process_iter(["cmdline"]) if wanted in " ".join(p.info["cmdline"] or []) + " "]
    return [child for main in mains for child in main.children()]


# --------------------------------------------------------------------------- SSRF


def test_a_loopback_fhir_server_is_refused_without_a_request(strict_service, fhir: HostileFhir) -> None:
    url, log_file = strict_service
    before = len(fhir.requests)
    answers = [post(url, without_prefetch(server)) for server in (
        f"http://127.0.0.1:{fhir.port}/ok/fhir",  # open port
        f"http://localhost:{fhir.port}/ok/fhir",  # a name that resolves to loopback
        "http://127.0.0.1:1/fhir",  # closed port
    )]
    assert len(fhir.requests) == before  # nothing was fetched
    texts = set()
    for response in answers:
        assert response.status_code == 412, response.text
        texts |= {text.split("reference")[0] for text in response.json()["prefetch"].values()}
    assert len(texts) == 1  # open, closed and refused look alike to the caller
    time.sleep(0.3)
    assert "address-refused" in log_file.read_text()


def test_a_fhir_server_the_issuer_does_not_list_is_refused(strict_service) -> None:
    url, _ = strict_service
    response = post(url, without_prefetch("https://elsewhere.example.net/fhir"))
    assert response.status_code == 412
    assert all("fhir_servers" in text for text in response.json()["prefetch"].values())


# --------------------------------------------------------------------------- drip


def test_fifty_drip_calls_leave_no_thread_or_socket_behind(dev_service, fhir: HostileFhir) -> None:
    url = dev_service
    with ThreadPoolExecutor(max_workers=10) as pool:  # warm up: every call thread exists, with its SQLite files
        statuses = list(pool.map(lambda _: post(url, without_prefetch(f"http://127.0.0.1:{fhir.port}/ok/fhir")).status_code, range(20)))
    assert set(statuses) <= {200, 412}  # under this load some may pass the 1 s FHIR deadline
    time.sleep(1.0)
    before = {p.pid: (p.num_threads(), p.num_fds()) for p in workers(url)}
    assert before

    def drip_call(_: int) -> tuple[int, float]:
        started = time.monotonic()
        response = post(url, without_prefetch(f"http://127.0.0.1:{fhir.port}/drip/fhir"), timeout=30)
        return response.status_code, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(drip_call, range(50)))
    assert {status for status, _ in results} == {412}
    print("drip call durations: max %.2f s" % max(elapsed for _, elapsed in results))
    assert max(elapsed for _, elapsed in results) < 8  # the 1 s deadline, plus queueing behind 9 others
    time.sleep(1.0)
    after = {p.pid: (p.num_threads(), p.num_fds()) for p in workers(url)}
    print("threads and fds per worker, before:", before, "after 50 drip calls:", after)
    for pid, (threads, fds) in after.items():
        assert pid in before, "a worker was replaced"
        assert threads <= before[pid][0] + 1
        assert fds <= before[pid][1] + 2, psutil.Process(pid).connections()


# --------------------------------------------------------------------------- oversized work


def test_fifty_thousand_resources_get_a_quick_422(dev_service) -> None:
    body = rolled("maintenance-overdue/overdue-92-days-positive")
    observation = {"resourceType": "Observation", "id": "x", "status": "final", "subject": {"reference": "Patient/p"},
                   "code": {"coding": [{"system": "http://loinc.org", "code": "2132-9"}]},
                   "valueQuantity": {"value": 150, "unit": "pg/mL"}, "effectiveDateTime": "2026-01-01"}
    body["prefetch"]["observations"] = {"resourceType": "Bundle", "type": "searchset",
                                       "entry": [{"resource": {**observation, "id": f"o{i}"}} for i in range(50_000)]}
    data = orjson.dumps(body)
    assert len(data) < 25 * 1024 * 1024
    started = time.monotonic()
    response = post(dev_service, data)
    elapsed = time.monotonic() - started
    print(f"50,000 resources ({len(data) / 1e6:.1f} MB): {response.status_code} in {elapsed:.2f} s")
    assert response.status_code == 422
    assert response.json()["error"] == "work_budget_exceeded"
    assert response.headers["Content-Type"].startswith("application/json")


def test_five_20_mb_fhir_pages_get_a_422_and_memory_comes_back(dev_service, fhir: HostileFhir) -> None:
    rss_before = {p.pid: p.memory_info().rss for p in workers(dev_service)}
    response = post(dev_service, without_prefetch(f"http://127.0.0.1:{fhir.port}/big/fhir"))
    time.sleep(0.5)
    rss_after = {p.pid: p.memory_info().rss for p in workers(dev_service)}
    print("worker RSS MiB before:", {k: v >> 20 for k, v in rss_before.items()}, "after five 20 MB pages:",
          {k: v >> 20 for k, v in rss_after.items()})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "work_budget_exceeded"
    for pid, rss in rss_after.items():
        assert rss < rss_before.get(pid, rss) + 200 * 1024 * 1024  # at most one call's byte budget, parsed


# --------------------------------------------------------------------------- forwarded headers


def test_forwarded_headers_never_decide_the_audience(tmp_path: Path) -> None:
    # Development: a development-only issuer and no CDS_PUBLIC_BASE_URL, so the audience is the
    # URL the request arrived at. X-Forwarded-Proto/-Host, from loopback too, must not change it.
    dev_client = FakeIssuer(iss="https://dev-only-ehr.example")
    issuers = write_issuers_file(tmp_path / "issuers.json", **{dev_client.iss: dev_client.entry(development_only=True)})
    env = {"CDS_TRUSTED_ISSUERS": str(issuers), "CDS_STATE_DIR": str(tmp_path / "state"), "CDS_PUBLIC_BASE_URL": ""}
    with running_service(env, tmp_path / "server.log", workers=1) as url:
        forged = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "443",
                  "Forwarded": "proto=https;host=evil.example"}
        as_forwarded = requests.get(f"{url}/cds-services", timeout=10,
                                    headers={**forged, **dev_client.headers("https://evil.example/cds-services")})
        https_forged = requests.get(f"{url}/cds-services", timeout=10,  # gunicorn trusted this one from loopback
                                    headers={**forged, **dev_client.headers(url.replace("http://", "https://") + "/cds-services")})
        as_received = requests.get(f"{url}/cds-services", timeout=10, headers={**forged, **dev_client.headers(f"{url}/cds-services")})
    assert as_forwarded.status_code == 401
    assert https_forged.status_code == 401
    assert as_received.status_code == 200
    assert "CDS_PUBLIC_BASE_URL is not set" in (tmp_path / "server.log").read_text()
