"""The security settings read from CDS_* variables, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds_service.settings import Settings, SettingsError, default_state_dir


def test_defaults_are_secure() -> None:
    settings = Settings.from_env({})
    assert settings.auth_disabled is False
    assert settings.trusted_issuers_file is None
    assert settings.jwt_algorithms == ("ES384", "RS384")
    assert settings.jwt_max_lifetime == 300 and settings.jwt_clock_skew == 60
    assert settings.cors_allowed_origins == ()
    assert settings.public_base_urls == ()
    assert settings.effective_state_dir == default_state_dir()


def test_every_security_variable() -> None:
    settings = Settings.from_env({
        "CDS_TRUSTED_ISSUERS": "config/trusted-issuers.sandbox-dev.json",
        "CDS_INSECURE_DISABLE_AUTH": "true",
        "CDS_PUBLIC_BASE_URL": "https://cds.example.org/b12/, http://localhost:8000",
        "CDS_JWT_ALGORITHMS": "ES384,RS384,ES256",
        "CDS_JWT_MAX_LIFETIME": "600",
        "CDS_JWT_CLOCK_SKEW": "0",
        "CDS_JWKS_CACHE_SECONDS": "120",
        "CDS_CORS_ALLOWED_ORIGINS": "http://localhost:8080, https://sandbox.cds-hooks.org/",
        "CDS_STATE_DIR": "/var/lib/cds",
    })
    assert settings.trusted_issuers_file == Path("config/trusted-issuers.sandbox-dev.json")
    assert settings.auth_disabled is True
    assert settings.public_base_urls == ("https://cds.example.org/b12", "http://localhost:8000")
    assert settings.jwt_algorithms == ("ES384", "RS384", "ES256")
    assert (settings.jwt_max_lifetime, settings.jwt_clock_skew, settings.jwks_cache_seconds) == (600, 0, 120)
    assert settings.cors_allowed_origins == ("http://localhost:8080", "https://sandbox.cds-hooks.org")
    assert settings.effective_state_dir == Path("/var/lib/cds")


@pytest.mark.parametrize("name,value,message", [
    ("CDS_JWT_ALGORITHMS", "HS256", "never allowed"),
    ("CDS_JWT_ALGORITHMS", "none", "never allowed"),
    ("CDS_JWT_ALGORITHMS", "EdDSA", "not supported"),
    ("CDS_INSECURE_DISABLE_AUTH", "maybe", "true or false"),
    ("CDS_PUBLIC_BASE_URL", "cds.example.org", "absolute http(s) URLs"),
    ("CDS_PUBLIC_BASE_URL", "https://cds.example.org/?x=1", "without query"),
    ("CDS_CORS_ALLOWED_ORIGINS", "https://sandbox.cds-hooks.org/path", "origins like"),
    ("CDS_CORS_ALLOWED_ORIGINS", "localhost:8080", "origins like"),
    ("CDS_JWT_MAX_LIFETIME", "0", "positive"),
    ("CDS_JWT_CLOCK_SKEW", "-1", "zero or more"),
    ("CDS_JWT_MAX_LIFETIME", "nan", "finite"),
])
def test_errors_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert name in str(caught.value) and message in str(caught.value)
