"""Which addresses FHIR fetches may reach, and which fhirServer URLs an issuer's list allows."""

from __future__ import annotations

import contextlib
import datetime
import http.server
import ssl
import threading
import time
from urllib.parse import unquote, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.fhir.client import FetchLimits, FhirClient, FhirFetchError
from cds_service.fhir.egress import address_allowed
from cds_service.security.fhir_servers import FhirServerEntryError, parse_fhir_servers


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(address, allow_private=False)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "fd00::1",
                                     "::ffff:127.0.0.1", "100.64.0.1", "0.0.0.0", "::"])
def test_loopback_and_private_addresses_are_refused_by_default(address: str) -> None:
    assert not address_allowed(address, allow_private=False)


@pytest.mark.parametrize("address", ["169.254.169.254", "fe80::1", "224.0.0.1", "0.0.0.0"])
def test_link_local_metadata_multicast_and_unspecified_are_refused_even_in_development(address: str) -> None:
    assert not address_allowed(address, allow_private=True)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "192.168.1.1"])
def test_development_allows_loopback_and_private(address: str) -> None:
    assert address_allowed(address, allow_private=True)


SERVERS = parse_fhir_servers(["https://ehr.example.org/fhir/r4", "https://fhir.example.net/tenants/*", "http://localhost:*/*"])


@pytest.mark.parametrize("url", [
    "https://ehr.example.org/fhir/r4", "https://EHR.example.org:443/fhir/r4/", "https://fhir.example.net/tenants",
    "https://fhir.example.net/tenants/a/r4", "http://localhost:18090", "http://localhost:8090/fhir",
])
def test_listed_servers_are_allowed(url: str) -> None:
    assert SERVERS.allows(url)


@pytest.mark.parametrize("url", [
    "https://ehr.example.org/fhir/r4/admin", "https://ehr.example.org/fhir", "http://ehr.example.org/fhir/r4",
    "https://ehr.example.org:8443/fhir/r4", "https://ehr.example.org.evil.example/fhir/r4",
    "https://user@ehr.example.org/fhir/r4", "https://ehr.example.org/fhir/r4?x=1", "https://ehr.example.org/fhir/r4#x",
    "https://fhir.example.net/tenantsX", "https://fhir.example.net/tenants/../admin", "https://fhir.example.net/tenants/%2e%2e/admin",
    "https://fhir.example.net/tenants\\\\a", " https://ehr.example.org/fhir/r4", "https://localhost/x", "http://127.0.0.1:8090/fhir",
])
def test_anything_else_is_refused(url: str) -> None:
    assert not SERVERS.allows(url)


@pytest.mark.parametrize("entry", ["ftp://x/fhir", "https://*.example.org/fhir", "https://x/fhir?y=1", "not a url", "https://x/f*"])
def test_bad_entries_are_configuration_errors(entry: str) -> None:
    with pytest.raises(FhirServerEntryError):
        parse_fhir_servers([entry])


@pytest.fixture()
def tls_files(tmp_path):
    """A self-signed certificate for localhost: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return tmp_path / "cert.pem", tmp_path / "key.pem"


@contextlib.contextmanager
def tls_server(tls_files, drip: bool = False):
    stop = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            payload = b'{"resourceType": "Patient", "id": "1"}'
            self.send_response(200)
            if drip:
                self.end_headers()
                self.wfile.write(b'{"resourceType": "Bundle", "entry": [')
                while not stop.wait(0.05):
                    try:
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    except OSError:
                        return
                return
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"https://localhost:{httpd.server_port}/fhir"
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()


def test_https_through_the_checked_connection_verifies_the_certificate(tls_files, monkeypatch) -> None:
    # The checked socket is wrapped in TLS for the host name: SNI and verification still work.
    with tls_server(tls_files) as base:
        client = FhirClient(FetchLimits(allow_private_addresses=True))
        with pytest.raises(FhirFetchError):  # an unknown CA: refused
            client.fetch(base, "Patient/1", None)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files[0]))
        assert client.fetch(base, "Patient/1", None) == [{"resourceType": "Patient", "id": "1"}]
        with pytest.raises(FhirFetchError) as refused:  # and loopback is still refused by default
            FhirClient().fetch(base, "Patient/1", None)
        assert refused.value.reason == "address-refused"


def test_a_dripping_tls_server_is_cut_at_the_deadline_and_leaves_no_thread(tls_files, monkeypatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files[0]))
    with tls_server(tls_files, drip=True) as base:
        client = FhirClient(FetchLimits(allow_private_addresses=True, total_timeout=0.5, read_timeout=5.0))
        threads_before = {t.name for t in threading.enumerate() if t.name.startswith("fhir-fetch")}
        started = time.monotonic()
        for _ in range(5):
            result = client.fetch_many(base, {"a": "Observation?patient=1", "b": "Condition?patient=1"}, None)
            assert {r.reason for r in result.values()} == {"deadline"}
        assert time.monotonic() - started < 5 * (0.5 + 1.5)  # each: its deadline, the cut wakes the reads at once
        assert {t.name for t in threading.enumerate() if t.name.startswith("fhir-fetch")} == threads_before


@given(prefix=st.sampled_from(["https://fhir.example.net/tenants", "https://fhir.example.net", "https://fhir.example.net.",
                               "https://user@fhir.example.net/tenants"]),
       suffix=st.text(alphabet="/.%2eE@:?#\\ab\t\n-_~ ", max_size=24))
@settings(derandomize=True, max_examples=400, database=None)
def test_fuzz_an_allowed_url_is_always_under_a_listed_base(prefix: str, suffix: str) -> None:
    url = prefix + suffix
    if SERVERS.allows(url):
        parts = urlsplit(url)
        assert parts.hostname == "fhir.example.net" and "@" not in parts.netloc
        assert parts.path.rstrip("/") == "/tenants" or parts.path.startswith("/tenants/")
        assert ".." not in unquote(parts.path).split("/") and not parts.query and not parts.fragment
