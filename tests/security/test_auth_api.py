"""Authentication through the app: every CDS Hooks route needs a valid JWT for its own URL."""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import jwt
import pytest

from cds_service.app import create_app
from cds_service.security import SecurityConfigError
from cds_service.security.replay import ReplayCache, ReplayCacheError
from cds_service.settings import Settings

from ..support.scenarios import load_scenarios
from .issuer import FakeIssuer, insecure_settings
from .issuer import auth_settings as make_auth_settings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SCENARIOS = {s.name: s for s in load_scenarios()}
POSITIVE = SCENARIOS["folate-without-b12/b12-199-positive"]
SERVICE = "/cds-services/b12-neuropathy-order-select"
BASE = "http://localhost"
FEEDBACK = {"feedback": [{"card": "0b8a8e2c-3a4a-4c1e-9d6b-1a2b3c4d5e6f", "outcome": "overridden",
                          "outcomeTimestamp": "2026-06-01T12:01:00Z"}]}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client(knowledge, auth_settings):
    return create_app(auth_settings, knowledge=knowledge, clock=lambda: NOW).test_client()


def request_body() -> dict:
    return copy.deepcopy(POSITIVE.request)


# --------------------------------------------------------------------------- the three routes

def test_discovery_hook_and_feedback_accept_a_token_for_their_url(client, issuer: FakeIssuer) -> None:
    assert client.get("/cds-services", headers=issuer.headers(f"{BASE}/cds-services")).status_code == 200
    response = client.post(SERVICE, json=request_body(), headers=issuer.headers(f"{BASE}{SERVICE}"))
    assert response.status_code == 200 and len(response.get_json()["cards"]) == 2
    feedback = client.post(f"{SERVICE}/feedback", json=FEEDBACK, headers=issuer.headers(f"{BASE}{SERVICE}/feedback"))
    assert feedback.status_code == 200


@pytest.mark.parametrize("method,path", [("GET", "/cds-services"), ("POST", SERVICE), ("POST", f"{SERVICE}/feedback"),
                                         ("POST", "/cds-services/no-such-service"), ("DELETE", "/cds-services"),
                                         ("HEAD", "/cds-services")])
def test_without_a_token_every_route_is_a_bare_401(client, method: str, path: str) -> None:
    response = client.open(path, method=method, json=request_body())
    assert response.status_code == 401
    if method != "HEAD":
        assert response.get_json() == {"error": "unauthorized"}
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_token_for_another_endpoint_is_refused(client, issuer: FakeIssuer) -> None:
    # The discovery token replayed against a service, and a service token against feedback.
    assert client.post(SERVICE, json=request_body(), headers=issuer.headers(f"{BASE}/cds-services")).status_code == 401
    assert client.post(f"{SERVICE}/feedback", json=FEEDBACK, headers=issuer.headers(f"{BASE}{SERVICE}")).status_code == 401


def test_a_replayed_token_is_refused(client, issuer: FakeIssuer) -> None:
    headers = issuer.headers(f"{BASE}{SERVICE}")
    assert client.post(SERVICE, json=request_body(), headers=headers).status_code == 200
    assert client.post(SERVICE, json=request_body(), headers=headers).status_code == 401


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Token abc", "bearer not-a-jwt"])
def test_malformed_authorization_headers(client, value: str) -> None:
    assert client.get("/cds-services", headers={"Authorization": value}).status_code == 401


def test_lower_case_bearer_scheme_is_accepted(client, issuer: FakeIssuer) -> None:
    token = issuer.token(f"{BASE}/cds-services")
    assert client.get("/cds-services", headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_health_needs_no_token(client) -> None:
    assert client.get("/healthz").status_code == 200


def test_errors_behind_authentication_keep_their_status(client, issuer: FakeIssuer) -> None:
    unknown = client.post("/cds-services/nope", json=request_body(), headers=issuer.headers(f"{BASE}/cds-services/nope"))
    assert unknown.status_code == 404
    malformed = client.post(SERVICE, data=b"{", content_type="application/json", headers=issuer.headers(f"{BASE}{SERVICE}"))
    assert malformed.status_code == 400


# --------------------------------------------------------------------------- logging

def test_the_reason_is_logged_without_the_token(client, issuer: FakeIssuer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = issuer.token(f"{BASE}/cds-services/elsewhere")
    response = client.post(SERVICE, json=request_body(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.get_json() == {"error": "unauthorized"}  # no detail for the caller
    assert "JWT rejected: aud" in caplog.text
    assert f"iss={issuer.iss}" in caplog.text
    for part in token.split("."):
        assert part not in caplog.text
    assert "Bearer ey" not in caplog.text


def test_accepted_calls_log_neither_token_nor_access_token(client, issuer: FakeIssuer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = issuer.token(f"{BASE}{SERVICE}")
    body = request_body()
    body["fhirAuthorization"] = {"access_token": "secret-ehr-access-token-123", "token_type": "Bearer",
                                 "expires_in": 300, "scope": "patient/*.read", "subject": "cds"}
    assert client.post(SERVICE, json=body, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert token.split(".")[2] not in caplog.text and "secret-ehr-access-token-123" not in caplog.text


# --------------------------------------------------------------------------- configuration

def test_authentication_is_on_by_default_and_needs_trusted_issuers(knowledge) -> None:
    with pytest.raises(SecurityConfigError, match="CDS_TRUSTED_ISSUERS") as caught:
        create_app(Settings(), knowledge=knowledge)
    assert "CDS_INSECURE_DISABLE_AUTH" in str(caught.value)


def test_disabling_authentication_warns_loudly_at_every_start(knowledge, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(2):
        caplog.clear()
        app = create_app(insecure_settings(), knowledge=knowledge, clock=lambda: NOW)
        assert "AUTHENTICATION IS OFF" in caplog.text
        assert any(r.levelno == logging.WARNING and "AUTHENTICATION IS OFF" in r.message for r in caplog.records)
    assert app.test_client().get("/cds-services").status_code == 200


def test_the_sandbox_dev_issuers_file_warns_at_start(knowledge, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(trusted_issuers_file=ROOT / "config" / "trusted-issuers.sandbox-dev.json", state_dir=tmp_path)
    create_app(settings, knowledge=knowledge)
    assert "TRUSTING A DEVELOPMENT-ONLY ISSUER https://sandbox.cds-hooks.org" in caplog.text
    assert "signing key is public" in caplog.text


def test_a_broken_issuers_file_stops_the_start(knowledge, tmp_path: Path) -> None:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps({"issuers": {"https://a.example": {"jwks_uri": "https://a.example/j"}}}))
    with pytest.raises(SecurityConfigError, match="did you mean 'jwks_url'"):
        create_app(Settings(trusted_issuers_file=path, state_dir=tmp_path / "s"), knowledge=knowledge)


def test_public_base_url_is_the_audience_behind_a_proxy(knowledge, tmp_path: Path, issuer: FakeIssuer) -> None:
    settings = replace(make_auth_settings(tmp_path, issuer), public_base_urls=("https://cds.example.org/b12",))
    client = create_app(settings, knowledge=knowledge, clock=lambda: NOW).test_client()
    assert client.get("/cds-services", headers=issuer.headers("https://cds.example.org/b12/cds-services")).status_code == 200
    # The URL the request arrived at (the Host header) is no longer accepted.
    assert client.get("/cds-services", headers=issuer.headers(f"{BASE}/cds-services")).status_code == 401


def test_without_public_base_url_the_audience_follows_the_host(client, issuer: FakeIssuer) -> None:
    headers = {**issuer.headers("http://127.0.0.1:8000/cds-services"), "Host": "127.0.0.1:8000"}
    assert client.get("/cds-services", headers=headers).status_code == 200


@pytest.mark.parametrize("host", ["ex ample", "a/b", "h:99999", ""])
def test_an_invalid_host_header_matches_no_audience(client, issuer: FakeIssuer, host: str) -> None:
    # Werkzeug turns an invalid Host into "", which would make the expected aud "http:///cds-services".
    for aud in ("http:///cds-services", f"http://{host}/cds-services"):
        assert client.get("/cds-services", headers={"Host": host, **issuer.headers(aud)}).status_code == 401


def test_a_failing_replay_cache_fails_closed(client, issuer: FakeIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise ReplayCacheError("disk I/O error")

    monkeypatch.setattr(ReplayCache, "remember", broken)
    response = client.get("/cds-services", headers=issuer.headers(f"{BASE}/cds-services"))
    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable"


# --------------------------------------------------------------------------- the CDS Hooks sandbox as a client

SANDBOX_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"


@pytest.fixture()
def sandbox(knowledge, tmp_path: Path):
    """The shipped sandbox dev configuration with its public key swapped for one we hold the private half of.

    (The sandbox's real private key is public, but it is not copied into this repository.)
    """
    stand_in = FakeIssuer(iss="https://sandbox.cds-hooks.org", kid=SANDBOX_KID)
    document = json.loads((ROOT / "config" / "trusted-issuers.sandbox-dev.json").read_text())
    document["issuers"][stand_in.iss]["jwks"] = stand_in.jwks()
    path = tmp_path / "sandbox-dev.json"
    path.write_text(json.dumps(document))
    settings = Settings(trusted_issuers_file=path, state_dir=tmp_path / "state")
    app = create_app(settings, knowledge=knowledge, clock=lambda: NOW)
    return app.test_client(), stand_in


def sandbox_headers(stand_in: FakeIssuer, url: str) -> dict[str, str]:
    """Exactly the sandbox's header and claims (SBX jwt-generator.js): ES384, kid, jku, exp = iat + 300, no tenant."""
    return {"Authorization": f"Bearer {stand_in.token(url, headers={'jku': SANDBOX_JKU})}",
            "Origin": "http://localhost:8080", "Accept": "application/json"}


def test_sandbox_discovery_rx_view_and_dismiss(sandbox) -> None:
    client, stand_in = sandbox
    base = "http://localhost:8000"
    host = {"Host": "localhost:8000"}
    discovery = client.get("/cds-services", headers={**sandbox_headers(stand_in, f"{base}/cds-services"), **host})
    assert discovery.status_code == 200
    assert discovery.headers["Access-Control-Allow-Origin"] == "http://localhost:8080"

    # Rx View opens: order-select with a draft MedicationRequest that has no medication yet.
    body = copy.deepcopy(_empty_draft_request())
    url = f"{base}{SERVICE}"
    response = client.post(SERVICE, json=body, headers={**sandbox_headers(stand_in, url), **host})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"cards": []}

    # Dismissing a card posts overridden feedback.
    feedback = client.post(f"{SERVICE}/feedback", json=FEEDBACK,
                           headers={**sandbox_headers(stand_in, f"{url}/feedback"), **host})
    assert feedback.status_code == 200


def test_sandbox_token_with_another_jku_is_refused(sandbox) -> None:
    client, stand_in = sandbox
    token = stand_in.token(f"{BASE}/cds-services", headers={"jku": "https://evil.example/.well-known/jwks.json"})
    assert client.get("/cds-services", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def _empty_draft_request() -> dict:
    for scenario in SCENARIOS.values():
        if "sandbox-empty-draft" in scenario.name:
            return scenario.request
    raise AssertionError("the sandbox-empty-draft scenario fixture is missing")


def test_tokens_carry_no_sub_and_need_none(issuer: FakeIssuer) -> None:
    claims = jwt.decode(issuer.token(BASE), options={"verify_signature": False})
    assert "sub" not in claims


def test_the_shared_auth_fixture_really_has_authentication_on(auth_settings: Settings) -> None:
    assert not auth_settings.auth_disabled and auth_settings.trusted_issuers_file is not None
