"""`cds-service serve` and the security configuration: refuse to start unsafely, say what to set."""

from __future__ import annotations

import pytest

from cds_service.cli import _parser, main


def test_serve_refuses_to_start_without_trusted_issuers(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CDS_TRUSTED_ISSUERS", raising=False)
    monkeypatch.delenv("CDS_INSECURE_DISABLE_AUTH", raising=False)
    assert main(["serve", "--port", "1"]) == 2
    error = capsys.readouterr().err
    assert "CDS_TRUSTED_ISSUERS" in error and "config/trusted-issuers.sandbox-dev.json" in error


def test_serve_reports_a_broken_issuers_file(tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "issuers.json"
    path.write_text('{"issuers": {"https://a.example": {"jwks_url": "http://a.example/jwks"}}}')
    monkeypatch.setenv("CDS_TRUSTED_ISSUERS", str(path))
    assert main(["serve", "--port", "1"]) == 2
    assert f"{path}: issuers['https://a.example'].jwks_url: must be an https URL" in capsys.readouterr().err


def test_serve_rejects_hmac_algorithms(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CDS_JWT_ALGORITHMS", "ES384,HS256")
    assert main(["serve", "--port", "1"]) == 2
    assert "never allowed" in capsys.readouterr().err


def test_default_port_is_not_the_local_sandbox_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CDS_PORT", raising=False)
    assert _parser().parse_args(["serve"]).port == 8000


def test_serve_requires_the_public_base_url_with_a_production_issuer(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CDS_TRUSTED_ISSUERS", "config/trusted-issuers.example.json")
    monkeypatch.setenv("CDS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("CDS_PUBLIC_BASE_URL", raising=False)
    monkeypatch.delenv("CDS_INSECURE_DISABLE_AUTH", raising=False)
    assert main(["serve", "--port", "1"]) == 2
    assert "CDS_PUBLIC_BASE_URL is not set" in capsys.readouterr().err
