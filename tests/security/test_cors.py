"""CORS for browser clients such as the CDS Hooks sandbox."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from cds_service.app import create_app
from cds_service.settings import Settings

from .issuer import FakeIssuer

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SANDBOX = "http://localhost:8080"
SERVICE = "/cds-services/b12-neuropathy-order-select"
ROUTES = ["/cds-services", SERVICE, f"{SERVICE}/feedback"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client(knowledge, auth_settings: Settings):
    settings = replace(auth_settings, cors_allowed_origins=(SANDBOX, "https://sandbox.cds-hooks.org"))
    return create_app(settings, knowledge=knowledge, clock=lambda: NOW).test_client()


def preflight(client, path: str, origin: str = SANDBOX, **extra: str):
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "authorization,content-type", **extra}
    return client.options(path, headers=headers)


@pytest.mark.parametrize("path", ROUTES)
def test_preflight_is_answered_without_a_jwt(client, path: str) -> None:
    response = preflight(client, path)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == SANDBOX
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")} == {"authorization", "content-type"}
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Origin" in response.headers["Vary"]


def test_preflight_from_a_public_page_to_localhost_allows_private_network(client) -> None:
    response = preflight(client, "/cds-services", origin="https://sandbox.cds-hooks.org",
                         **{"Access-Control-Request-Private-Network": "true"})
    assert response.headers["Access-Control-Allow-Private-Network"] == "true"


def test_unlisted_origin_gets_no_cors_headers(client) -> None:
    response = preflight(client, SERVICE, origin="https://evil.example")
    assert response.status_code == 204
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Origin" not in client.get("/cds-services", headers={"Origin": "https://evil.example"}).headers


@pytest.mark.parametrize("path", ROUTES)
def test_401_carries_cors_headers_so_the_browser_can_show_it(client, path: str) -> None:
    response = client.post(path, json={}, headers={"Origin": SANDBOX})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == SANDBOX


def test_every_status_carries_cors_headers(client, issuer: FakeIssuer) -> None:
    base = "http://localhost"
    cases = [
        client.get("/cds-services", headers={"Origin": SANDBOX, **issuer.headers(f"{base}/cds-services")}),  # 200
        client.post(SERVICE, data=b"{", content_type="application/json",
                    headers={"Origin": SANDBOX, **issuer.headers(f"{base}{SERVICE}")}),  # 400
        client.post("/cds-services/nope", json={}, headers={"Origin": SANDBOX, **issuer.headers(f"{base}/cds-services/nope")}),  # 404
        client.delete("/cds-services", headers={"Origin": SANDBOX, **issuer.headers(f"{base}/cds-services")}),  # 405
        client.post(SERVICE, data=b"x", content_type="text/plain",
                    headers={"Origin": SANDBOX, **issuer.headers(f"{base}{SERVICE}")}),  # 415
    ]
    assert [r.status_code for r in cases] == [200, 400, 404, 405, 415]
    for response in cases:
        assert response.headers["Access-Control-Allow-Origin"] == SANDBOX


def test_413_carries_cors_headers(knowledge, auth_settings: Settings, issuer: FakeIssuer) -> None:
    settings = replace(auth_settings, cors_allowed_origins=(SANDBOX,), max_body_bytes=2048)
    client = create_app(settings, knowledge=knowledge, clock=lambda: NOW).test_client()
    response = client.post(SERVICE, data=b"{" + b" " * 5000 + b"}", content_type="application/json",
                           headers={"Origin": SANDBOX, **issuer.headers(f"http://localhost{SERVICE}")})
    assert response.status_code == 413
    assert response.headers["Access-Control-Allow-Origin"] == SANDBOX


def test_no_origins_by_default(knowledge, auth_settings: Settings) -> None:
    client = create_app(auth_settings, knowledge=knowledge, clock=lambda: NOW).test_client()
    assert "Access-Control-Allow-Origin" not in preflight(client, "/cds-services").headers


def test_wildcard_origin(knowledge, auth_settings: Settings) -> None:
    client = create_app(replace(auth_settings, cors_allowed_origins=("*",)), knowledge=knowledge, clock=lambda: NOW).test_client()
    assert preflight(client, "/cds-services", origin="https://any.example").headers["Access-Control-Allow-Origin"] == "*"


def test_origin_comparison_ignores_case_and_default_port(client) -> None:
    response = client.get("/cds-services", headers={"Origin": "HTTPS://Sandbox.CDS-Hooks.org:443"})
    assert response.headers["Access-Control-Allow-Origin"] == "HTTPS://Sandbox.CDS-Hooks.org:443"


def test_health_has_no_cors(client) -> None:
    assert "Access-Control-Allow-Origin" not in client.get("/healthz", headers={"Origin": SANDBOX}).headers


def test_the_sandbox_dev_issuers_file_allows_the_sandbox_origins(knowledge, tmp_path: Path) -> None:
    settings = Settings(trusted_issuers_file=ROOT / "config" / "trusted-issuers.sandbox-dev.json", state_dir=tmp_path)
    client = create_app(settings, knowledge=knowledge, clock=lambda: NOW).test_client()
    for origin in ("http://localhost:8080", "http://127.0.0.1:8080", "https://sandbox.cds-hooks.org"):
        assert preflight(client, SERVICE, origin=origin).headers["Access-Control-Allow-Origin"] == origin


def test_an_unexpected_500_carries_cors_headers(client, issuer: FakeIssuer, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("cds_service.api.hooks.decide", broken)
    response = client.post(SERVICE, json={"hook": "order-select", "hookInstance": "x", "context": {
        "userId": "Practitioner/1", "patientId": "p", "selections": [], "draftOrders": {"resourceType": "Bundle", "entry": []}}},
        headers={"Origin": SANDBOX, **issuer.headers(f"http://localhost{SERVICE}")})
    assert response.status_code == 500
    assert response.get_json()["error"] == "internal_error"
    assert response.headers["Access-Control-Allow-Origin"] == SANDBOX
