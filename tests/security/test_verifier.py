"""The JWT matrix, with real generated ES384/RS384 keys: what is accepted and what is not."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from cds_service.security import AuthError, JwtVerifier, ReplayCache
from cds_service.security.issuers import parse_trusted_issuers
from cds_service.security.verifier import normalize_url

from .issuer import REMOVE, FakeIssuer

AUD = "https://cds.example.org/cds-services/b12-neuropathy-order-select"
ES384 = FakeIssuer(iss="https://ehr-ec.example")
RS384 = FakeIssuer(iss="https://ehr-rsa.example", alg="RS384")
STRANGER = FakeIssuer(iss="https://ehr-ec.example", kid=ES384.kid)  # same iss and kid, another key


def make_verifier(tmp_path: Path, entries: dict | None = None, **kwargs) -> JwtVerifier:
    issuers = parse_trusted_issuers({"issuers": entries or {ES384.iss: ES384.entry(), RS384.iss: RS384.entry()}}, "test")
    return JwtVerifier(issuers, ReplayCache(tmp_path / "state"), **kwargs)


@pytest.fixture()
def verifier(tmp_path: Path) -> JwtVerifier:
    return make_verifier(tmp_path)


def rejected(verifier: JwtVerifier, token: str, aud: str = AUD) -> str:
    with pytest.raises(AuthError) as caught:
        verifier.verify(token, [aud])
    return caught.value.reason


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --------------------------------------------------------------------------- accepted

@pytest.mark.parametrize("client", [ES384, RS384], ids=["ES384", "RS384"])
def test_a_valid_token_is_accepted(verifier: JwtVerifier, client: FakeIssuer) -> None:
    token = client.token(AUD)
    verified = verifier.verify(token, [AUD])
    assert verified.iss == client.iss
    assert verified.tenant is None
    assert jwt.decode(token, options={"verify_signature": False}).keys() == {"iss", "aud", "exp", "iat", "jti"}  # no sub


def test_aud_may_be_an_array_containing_this_endpoint(verifier: JwtVerifier) -> None:
    verifier.verify(ES384.token(["https://other.example/cds-services", AUD]), [AUD])


def test_aud_comparison_is_rfc_3986_normalisation_only(verifier: JwtVerifier) -> None:
    verifier.verify(ES384.token("HTTPS://CDS.example.org:443/cds-services/b12-neuropathy-order-select"), [AUD])
    verifier.verify(ES384.token("https://cds.example.org/cds-services/b12%2Dneuropathy-order-select"), [AUD])
    assert normalize_url("http://localhost:80/cds-services") == normalize_url("http://LOCALHOST/cds-services")
    assert normalize_url("http://localhost:8000/cds-services") != normalize_url("http://localhost/cds-services")
    assert normalize_url("http://localhost/a%2fb") == "http://localhost/a%2Fb"


@pytest.mark.parametrize("aud", [
    AUD + "/", AUD + "//", AUD + "?x=1", AUD + "#frag", " " + AUD, AUD + " ", AUD + "\n",
    AUD.replace("https://", "https://user@"), AUD.replace("https://", "https://user:pw@"),
    AUD.replace("/cds-services/", "/cds-services/./"), AUD.replace("/cds-services/", "/x/../cds-services/"),
    AUD.replace("/cds-services/", "/cds-services\\"),
])
def test_an_aud_that_is_not_exactly_this_endpoint_is_refused(verifier: JwtVerifier, aud: str) -> None:
    with pytest.raises(AuthError, match="aud"):
        verifier.verify(ES384.token(aud), [AUD])


def test_the_sandbox_header_shape_is_accepted_with_its_jku_allow_listed(tmp_path: Path) -> None:
    sandbox = FakeIssuer(iss="https://sandbox.cds-hooks.org", kid="44823f3d-0b01-4a6c-a80e-b9d3e8a7226f")
    jku = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
    verifier = make_verifier(tmp_path, {sandbox.iss: sandbox.entry(jku=jku)})
    verifier.verify(sandbox.token(AUD, headers={"jku": jku}), [AUD])


def test_expired_within_the_clock_skew_is_accepted(tmp_path: Path) -> None:
    verifier = make_verifier(tmp_path, clock_skew=60)
    verifier.verify(ES384.token(AUD, now=time.time() - 330), [AUD])  # expired 30 s ago


def test_rsa_key_without_alg_verifies_rs384_but_not_other_algorithms(tmp_path: Path) -> None:
    # PyJWK would default such a key to RS256; the verifier binds it to the token's allowed alg.
    verifier = make_verifier(tmp_path, {RS384.iss: {"jwks": RS384.jwks(with_alg=False)}}, algorithms=["RS384"])
    verifier.verify(RS384.token(AUD), [AUD])
    assert "not allowed" in rejected(verifier, RS384.token(AUD, alg="RS256"))


def test_es256_only_when_configured(tmp_path: Path) -> None:
    es256 = FakeIssuer(iss="https://ehr-p256.example", alg="ES256")
    default = make_verifier(tmp_path, {es256.iss: es256.entry()})
    assert "not allowed" in rejected(default, es256.token(AUD))
    widened = make_verifier(tmp_path, {es256.iss: es256.entry()}, algorithms=["ES384", "RS384", "ES256"])
    widened.verify(es256.token(AUD), [AUD])


def test_tenant_must_be_listed_when_the_issuer_has_tenants(tmp_path: Path) -> None:
    verifier = make_verifier(tmp_path, {ES384.iss: ES384.entry(tenant=["north"])})
    verifier.verify(ES384.token(AUD, claims={"tenant": "north"}), [AUD])
    assert "tenant" in rejected(verifier, ES384.token(AUD, claims={"tenant": "south"}))
    assert "tenant" in rejected(verifier, ES384.token(AUD))


# --------------------------------------------------------------------------- rejected

def test_expired(verifier: JwtVerifier) -> None:
    assert rejected(verifier, ES384.token(AUD, now=time.time() - 400)) == "expired"


def test_wrong_aud(verifier: JwtVerifier) -> None:
    assert rejected(verifier, ES384.token("https://cds.example.org/cds-services")).startswith("aud ")
    assert rejected(verifier, ES384.token(["https://a.example", "https://b.example"])).startswith("aud ")
    assert "aud is not" in rejected(verifier, ES384.token(AUD, claims={"aud": {"url": AUD}}))


def test_untrusted_issuer(verifier: JwtVerifier) -> None:
    outsider = FakeIssuer(iss="https://rogue.example")
    assert rejected(verifier, outsider.token(AUD)) == "issuer not trusted"


def test_trusted_iss_signed_with_another_key(verifier: JwtVerifier) -> None:
    assert "signature" in rejected(verifier, STRANGER.token(AUD))


def test_replayed_jti(verifier: JwtVerifier) -> None:
    token = ES384.token(AUD)
    verifier.verify(token, [AUD])
    assert rejected(verifier, token) == "replayed jti"
    # A new token that reuses the jti is a replay too.
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert rejected(verifier, ES384.token(AUD, claims={"jti": jti})) == "replayed jti"


def test_replayed_jti_is_caught_by_another_worker(tmp_path: Path) -> None:
    first, second = make_verifier(tmp_path), make_verifier(tmp_path)  # two processes' views of one state dir
    token = ES384.token(AUD)
    first.verify(token, [AUD])
    assert rejected(second, token) == "replayed jti"


def test_same_jti_from_two_issuers_is_not_a_replay(verifier: JwtVerifier) -> None:
    verifier.verify(ES384.token(AUD, claims={"jti": "same"}), [AUD])
    verifier.verify(RS384.token(AUD, claims={"jti": "same"}), [AUD])


def test_unknown_kid(verifier: JwtVerifier) -> None:
    assert "kid" in rejected(verifier, ES384.token(AUD, headers={"kid": "not-a-known-kid"}))


def test_alg_none(verifier: JwtVerifier) -> None:
    claims = ES384.claims(AUD)
    token = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': ES384.kid})}.{b64(claims)}."
    assert rejected(verifier, token) == "not a compact JWS"  # no signature at all
    token = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': ES384.kid})}.{b64(claims)}.{b64(b'x')}"
    assert "not allowed" in rejected(verifier, token)


@pytest.mark.parametrize("alg,digest", [("HS256", hashlib.sha256), ("HS384", hashlib.sha384)])
def test_hmac_signed_with_the_public_key_as_secret(verifier: JwtVerifier, alg: str, digest) -> None:
    """The classic key-confusion attack: the public key, known to all, used as an HMAC secret."""
    for client in (ES384, RS384):
        public_pem = client.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        signing_input = f"{b64({'alg': alg, 'typ': 'JWT', 'kid': client.kid})}.{b64(client.claims(AUD))}"
        signature = hmac.new(public_pem, signing_input.encode(), digest).digest()
        assert "not allowed" in rejected(verifier, f"{signing_input}.{b64(signature)}")


def test_hmac_algorithms_cannot_be_configured(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        make_verifier(tmp_path, algorithms=["ES384", "HS256"])


def test_jku_not_allow_listed(verifier: JwtVerifier) -> None:
    token = ES384.token(AUD, headers={"jku": "https://attacker.example/jwks.json"})
    assert "jku" in rejected(verifier, token)
    assert "jku" in rejected(verifier, ES384.token(AUD, headers={"jku": ["https://attacker.example/jwks.json"]}))


def test_rs512_token_against_an_rs384_jwk(tmp_path: Path) -> None:
    """The measured PyJWT pitfall: with the raw key an RS512 token passed against an RS384 JWK."""
    verifier = make_verifier(tmp_path, algorithms=["RS384", "RS512"])
    assert "no key" in rejected(verifier, RS384.token(AUD, alg="RS512"))


@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "iat", "jti"])
def test_each_required_claim_is_required(verifier: JwtVerifier, claim: str) -> None:
    rejected(verifier, ES384.token(AUD, claims={claim: REMOVE}))


def test_lifetime_longer_than_the_maximum(verifier: JwtVerifier) -> None:
    assert "lifetime" in rejected(verifier, ES384.token(AUD, lifetime=3600))


def test_configured_lifetime(tmp_path: Path) -> None:
    verifier = make_verifier(tmp_path, max_lifetime=3600)
    verifier.verify(ES384.token(AUD, lifetime=3600), [AUD])


def test_iat_in_the_future(verifier: JwtVerifier) -> None:
    assert rejected(verifier, ES384.token(AUD, now=time.time() + 300)) == "iat is in the future"


def test_nbf_in_the_future(verifier: JwtVerifier) -> None:
    assert "nbf" in rejected(verifier, ES384.token(AUD, claims={"nbf": time.time() + 200}))


@pytest.mark.parametrize("value", ["1900000000", None, True, [1]])
def test_exp_that_is_not_a_number(verifier: JwtVerifier, value) -> None:
    rejected(verifier, ES384.token(AUD, claims={"exp": value}))


@pytest.mark.parametrize("header,value", [("typ", REMOVE), ("typ", "at+jwt"), ("kid", REMOVE), ("kid", 7), ("kid", ""),
                                          ("crit", ["exp"]), ("alg", ["ES384"])])
def test_header_requirements(verifier: JwtVerifier, header: str, value) -> None:
    fields = {"alg": "ES384", "typ": "JWT", "kid": ES384.kid}
    if value is REMOVE:
        del fields[header]
    else:
        fields[header] = value
    rejected(verifier, ES384.sign_raw(fields, ES384.claims(AUD)))


def test_sign_raw_makes_tokens_the_verifier_accepts(verifier: JwtVerifier) -> None:
    verifier.verify(ES384.sign_raw({"alg": "ES384", "typ": "JWT", "kid": ES384.kid}, ES384.claims(AUD)), [AUD])


@pytest.mark.parametrize("payload", [[1, 2], "a string", 5])
def test_payload_that_is_not_an_object(verifier: JwtVerifier, payload) -> None:
    rejected(verifier, ES384.sign_raw({"alg": "ES384", "typ": "JWT", "kid": ES384.kid}, payload))


@pytest.mark.parametrize("jti", ["", "x" * 257, 12])
def test_jti_must_be_a_bounded_string(verifier: JwtVerifier, jti) -> None:
    rejected(verifier, ES384.token(AUD, claims={"jti": jti}))


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "é.é.é", "a" * 9000, "eyJ.eyJ.x!"])
def test_garbage(verifier: JwtVerifier, token: str) -> None:
    rejected(verifier, token)


def test_reason_and_log_text_never_contain_the_token(verifier: JwtVerifier) -> None:
    token = ES384.token("https://other.example/x")
    with pytest.raises(AuthError) as caught:
        verifier.verify(token, [AUD])
    text = caught.value.log_text()
    assert token not in text and token.split(".")[2] not in text
    assert "iss=https://ehr-ec.example" in text and "jti=" in text
