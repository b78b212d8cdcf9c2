"""Issuer keys: inline sets are checked strictly; fetched sets are pinned, cached, refreshed with a cooldown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import responses

from cds_service.security import AuthError, JwtVerifier, ReplayCache
from cds_service.security.issuers import parse_trusted_issuers
from cds_service.security.jwks import JwkError, JwksFetchError, RemoteJwks, fetch_jwks, parse_jwk_set

from .issuer import FakeIssuer

AUD = "https://cds.example.org/cds-services"
JWKS_URL = "https://ehr.example.org/.well-known/jwks.json"
CLIENT = FakeIssuer(iss="https://ehr.example.org")
ROTATED = FakeIssuer(iss="https://ehr.example.org", kid="rotated-2027")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeFetch:
    def __init__(self, *sets: dict) -> None:
        self.sets = list(sets)
        self.urls: list[str] = []

    def __call__(self, url: str) -> dict:
        self.urls.append(url)
        result = self.sets[0] if len(self.sets) == 1 else self.sets.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


# --------------------------------------------------------------------------- parsing

def test_private_key_material_is_refused() -> None:
    private = json.loads(__import__("jwt").algorithms.ECAlgorithm.to_jwk(CLIENT.private_key))
    private["kid"] = "k"
    with pytest.raises(JwkError, match=r"private key material \(d\)"):
        parse_jwk_set({"keys": [private]}, strict=True)


@pytest.mark.parametrize("jwk,message", [
    ({"kty": "oct", "kid": "k", "k": "c2VjcmV0"}, "symmetric"),
    ({**CLIENT.public_jwk(), "kid": ""}, "kid"),
    ({**CLIENT.public_jwk(), "use": "enc"}, "use"),
    ({**CLIENT.public_jwk(), "alg": "RS384"}, "does not fit"),
    ({**CLIENT.public_jwk(), "x": "AAAA"}, "not a valid public key"),
    ({"kty": "OKP", "kid": "k", "crv": "Ed25519", "x": "AAAA"}, "kty"),
])
def test_unusable_keys_are_refused_in_configuration(jwk: dict, message: str) -> None:
    with pytest.raises(JwkError, match=message):
        parse_jwk_set({"keys": [jwk]}, strict=True)


def test_duplicate_kid_is_refused() -> None:
    with pytest.raises(JwkError, match="twice"):
        parse_jwk_set({"keys": [CLIENT.public_jwk(), CLIENT.public_jwk()]}, strict=True)


def test_fetched_sets_skip_unusable_keys() -> None:
    keys = parse_jwk_set({"keys": [{"kty": "oct", "kid": "x", "k": "AA"}, {"kty": "RSA", "use": "enc"}, CLIENT.public_jwk()]}, strict=False)
    assert list(keys) == [CLIENT.kid]


@pytest.mark.parametrize("data", [[], {"keys": {}}, {"key": []}, "x"])
def test_not_a_jwk_set(data) -> None:
    with pytest.raises(JwkError, match="JWK Set"):
        parse_jwk_set(data, strict=True)


# --------------------------------------------------------------------------- remote cache

def test_keys_are_fetched_once_and_cached() -> None:
    fetch = FakeFetch(CLIENT.jwks())
    remote = RemoteJwks(JWKS_URL, fetch=fetch, clock=Clock())
    for _ in range(5):
        assert remote.lookup(CLIENT.kid).get(CLIENT.kid, "ES384") is not None
    assert fetch.urls == [JWKS_URL]


def test_unknown_kid_refreshes_at_most_once_per_cooldown() -> None:
    clock = Clock()
    fetch = FakeFetch(CLIENT.jwks())
    remote = RemoteJwks(JWKS_URL, fetch=fetch, clock=clock, cooldown=30)
    remote.lookup(CLIENT.kid)
    clock.now += 31
    for attempt in range(1000):  # an attacker's flood of made-up kids
        assert remote.lookup(f"made-up-{attempt}").get(f"made-up-{attempt}", "ES384") is None
    assert len(fetch.urls) == 2
    clock.now += 31
    remote.lookup("another-made-up")
    assert len(fetch.urls) == 3


def test_key_rotation_is_picked_up_on_the_new_kid() -> None:
    clock = Clock()
    fetch = FakeFetch(CLIENT.jwks(), {"keys": [CLIENT.public_jwk(), ROTATED.public_jwk()]})
    remote = RemoteJwks(JWKS_URL, fetch=fetch, clock=clock, cooldown=30)
    assert remote.lookup(CLIENT.kid).get(CLIENT.kid, "ES384") is not None
    clock.now += 60
    assert remote.lookup(ROTATED.kid).get(ROTATED.kid, "ES384") is not None


def test_a_failing_fetch_keeps_the_cached_keys() -> None:
    clock = Clock()
    fetch = FakeFetch(CLIENT.jwks(), JwksFetchError("HTTP 503"))
    remote = RemoteJwks(JWKS_URL, fetch=fetch, clock=clock, cache_seconds=100)
    remote.lookup(CLIENT.kid)
    clock.now += 101  # stale: refresh is tried, fails, old keys stay
    assert remote.lookup(CLIENT.kid).get(CLIENT.kid, "ES384") is not None
    assert len(fetch.urls) == 2


def test_cache_expiry_refetches() -> None:
    clock = Clock()
    fetch = FakeFetch(CLIENT.jwks())
    remote = RemoteJwks(JWKS_URL, fetch=fetch, clock=clock, cache_seconds=100)
    remote.lookup(CLIENT.kid)
    clock.now += 50
    remote.lookup(CLIENT.kid)
    clock.now += 51
    remote.lookup(CLIENT.kid)
    assert len(fetch.urls) == 2


# --------------------------------------------------------------------------- HTTP

@responses.activate
def test_fetch_jwks_over_http() -> None:
    responses.get(JWKS_URL, json=CLIENT.jwks())
    assert fetch_jwks(JWKS_URL) == CLIENT.jwks()


@responses.activate
@pytest.mark.parametrize("kwargs,message", [
    ({"status": 302, "headers": {"Location": "http://169.254.169.254/latest"}}, "HTTP 302"),
    ({"status": 500}, "HTTP 500"),
    ({"body": b"<html>"}, "not valid JSON"),
    ({"body": b"[" + b"1," * 200_000 + b"1]"}, "larger than"),
    ({"body": requests.ConnectTimeout()}, "timed out"),
    ({"body": requests.ConnectionError()}, "connection failed"),
])
def test_fetch_jwks_failures(kwargs: dict, message: str) -> None:
    responses.get(JWKS_URL, **kwargs)
    with pytest.raises(JwksFetchError, match=message):
        fetch_jwks(JWKS_URL)
    assert len(responses.calls) == 1  # a redirect is not followed


@responses.activate
def test_verifier_fetches_only_the_pinned_url_never_the_jku(tmp_path: Path) -> None:
    """jku is an SSRF vector: a token naming another URL is refused without any request to it."""
    responses.get(JWKS_URL, json=CLIENT.jwks())
    issuers = parse_trusted_issuers({"issuers": {CLIENT.iss: {"jwks_url": JWKS_URL}}}, "test")
    verifier = JwtVerifier(issuers, ReplayCache(tmp_path))
    verifier.verify(CLIENT.token(AUD, headers={"jku": JWKS_URL}), [AUD])
    verifier.verify(CLIENT.token(AUD), [AUD])
    for target in ("http://169.254.169.254/latest/meta-data", "https://attacker.example/jwks.json"):
        with pytest.raises(AuthError, match="jku"):
            verifier.verify(CLIENT.token(AUD, headers={"jku": target}), [AUD])
    assert [call.request.url for call in responses.calls] == [JWKS_URL]


@responses.activate
def test_unknown_kid_through_the_verifier_fetches_once_per_cooldown(tmp_path: Path) -> None:
    responses.get(JWKS_URL, json=CLIENT.jwks())
    issuers = parse_trusted_issuers({"issuers": {CLIENT.iss: {"jwks_url": JWKS_URL}}}, "test")
    verifier = JwtVerifier(issuers, ReplayCache(tmp_path))
    for attempt in range(50):
        with pytest.raises(AuthError, match="kid"):
            verifier.verify(CLIENT.token(AUD, headers={"kid": f"kid-{attempt}"}), [AUD])
    assert len(responses.calls) == 1
