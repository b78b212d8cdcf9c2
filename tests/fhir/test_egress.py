"""Which addresses FHIR fetches may reach, and which fhirServer URLs an issuer's list allows."""

from __future__ import annotations

import pytest

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
