"""The trusted issuers file: the shipped examples load, and every mistake names the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_service.security import IssuerConfigError, load_trusted_issuers
from cds_service.security.jwks import RemoteJwks, StaticJwks

from .issuer import FakeIssuer

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_DEV = ROOT / "config" / "trusted-issuers.sandbox-dev.json"
EXAMPLE = ROOT / "config" / "trusted-issuers.example.json"
SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
CLIENT = FakeIssuer(iss="https://ehr.example.org")


def write(tmp_path: Path, document) -> Path:
    path = tmp_path / "issuers.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def test_the_sandbox_dev_file_trusts_the_sandbox_inline_and_is_flagged() -> None:
    issuers = load_trusted_issuers(SANDBOX_DEV)
    sandbox = issuers.get("https://sandbox.cds-hooks.org")
    assert sandbox is not None and isinstance(sandbox.keys, StaticJwks)  # never fetched
    assert sandbox.keys.keys.get(SANDBOX_KID, "ES384") is not None
    assert sandbox.allowed_jku == {"https://sandbox.cds-hooks.org/.well-known/jwks.json"}
    assert sandbox.development_only and sandbox.publicly_known_key
    assert issuers.insecure() == [sandbox]
    assert {"http://localhost:8080", "https://sandbox.cds-hooks.org"} <= set(issuers.origins())


def test_the_sandbox_dev_file_holds_the_sandbox_public_jwks() -> None:
    reference = ROOT.parent / "shared" / "reference" / "cds-hooks-sandbox-jwks.json"
    if not reference.exists():
        pytest.skip("the shared reference copy of the sandbox JWKS is not beside this checkout")
    shipped = json.loads(SANDBOX_DEV.read_text())["issuers"]["https://sandbox.cds-hooks.org"]["jwks"]
    assert shipped == json.loads(reference.read_text())


def test_the_production_example_loads_and_is_not_flagged() -> None:
    issuers = load_trusted_issuers(EXAMPLE)
    ehr = issuers.get("https://ehr.example.org")
    assert isinstance(ehr.keys, RemoteJwks) and ehr.keys.url == "https://ehr.example.org/.well-known/jwks.json"
    assert ehr.allowed_jku == {"https://ehr.example.org/.well-known/jwks.json"}
    assert ehr.tenants == {"example-hospital-north", "example-hospital-south"}
    assert issuers.insecure() == []
    assert issuers.origins() == ()


def test_a_copy_of_the_sandbox_key_is_flagged_even_under_another_name(tmp_path: Path) -> None:
    sandbox_jwks = json.loads(SANDBOX_DEV.read_text())["issuers"]["https://sandbox.cds-hooks.org"]["jwks"]
    issuers = load_trusted_issuers(write(tmp_path, {"issuers": {"https://my-test-ehr.example": {"jwks": sandbox_jwks}}}))
    assert [i.iss for i in issuers.insecure()] == ["https://my-test-ehr.example"]


@pytest.mark.parametrize("document,message", [
    ("{", "not valid JSON"),
    ([], '"issuers"'),
    ({}, '"issuers" must be a non-empty object'),
    ({"issuers": {}}, "non-empty"),
    ({"issuer": {}}, "issuer: unknown field (did you mean 'issuers'?)"),
    ({"issuers": {"https://a.example": {"jwks_uri": "https://a.example/jwks"}}}, "jwks_uri: unknown field (did you mean 'jwks_url'?)"),
    ({"issuers": {"https://a.example": {}}}, "exactly one of jwks_url"),
    ({"issuers": {"https://a.example": {"jwks_url": "https://a.example/j", "jwks": {"keys": []}}}}, "exactly one of jwks_url"),
    ({"issuers": {"https://a.example": {"jwks_url": "http://a.example/jwks"}}}, "jwks_url: must be an https URL"),
    ({"issuers": {"https://a.example": {"jwks_url": "file:///etc/passwd"}}}, "must be an https URL"),
    ({"issuers": {"https://a.example": {"jwks_url": 5}}}, "jwks_url: must be a string"),
    ({"issuers": {"https://a.example": {"jwks": {"keys": []}}}}, "jwks: \"keys\" is empty"),
    ({"issuers": {"https://a.example": {"jwks": {"keys": [{"kty": "oct", "kid": "k", "k": "AA"}]}}}}, "symmetric"),
    ({"issuers": {"https://a.example": {"jwks_url": "https://a.example/j", "tenant": 5}}}, "tenant: must be a non-empty string"),
    ({"issuers": {"https://a.example": {"jwks_url": "https://a.example/j", "origins": ["https://x.example/path"]}}}, "origins"),
    ({"issuers": {"https://a.example": {"jwks_url": "https://a.example/j", "origins": "*"}}}, "origins"),
    ({"issuers": {"https://a.example": {"jwks_url": "https://a.example/j", "jku": "http://evil.example/j"}}}, "jku: must be an https URL"),
    ({"issuers": {"https://a.example": {"jwks_url": "https://a.example/j", "development_only": "yes"}}}, "development_only"),
    ({"issuers": {" https://a.example": {"jwks_url": "https://a.example/j"}}}, "exact, non-empty iss"),
    ({"issuers": {"https://a.example": []}}, "must be an object"),
])
def test_mistakes_name_the_file_and_the_field(tmp_path: Path, document, message: str) -> None:
    path = write(tmp_path, document)
    with pytest.raises(IssuerConfigError) as caught:
        load_trusted_issuers(path)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(IssuerConfigError, match="does not exist"):
        load_trusted_issuers(tmp_path / "nope.json")


def test_loopback_http_jwks_url_is_allowed_for_local_test_issuers(tmp_path: Path) -> None:
    issuers = load_trusted_issuers(write(tmp_path, {"issuers": {"local": {"jwks_url": "http://127.0.0.1:9999/jwks"}}}))
    assert issuers.get("local").allowed_jku == {"http://127.0.0.1:9999/jwks"}


def test_string_or_array_members(tmp_path: Path) -> None:
    document = {"issuers": {CLIENT.iss: CLIENT.entry(tenant="t1", jku=["https://a.example/1", "https://a.example/2"])}}
    issuer = load_trusted_issuers(write(tmp_path, document)).get(CLIENT.iss)
    assert issuer.tenants == {"t1"} and len(issuer.allowed_jku) == 2
