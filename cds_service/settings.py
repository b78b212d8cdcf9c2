"""One typed settings object, read from CDS_* environment variables with safe defaults."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


def shipped_knowledge_dir() -> Path:
    """The knowledge this package ships: inside the installed package (a wheel), else the
    repository's plan_definitions/ beside it (a checkout, an editable install)."""
    package = Path(__file__).resolve().parent
    installed = package / "plan_definitions"
    return installed if installed.is_dir() else package.parent / "plan_definitions"


DEFAULT_KNOWLEDGE_DIR = shipped_knowledge_dir()

# Asymmetric JWS algorithms a CDS client may sign with. The spec forbids "none" and every
# symmetric (HMAC) algorithm; ES384 and RS384 are the ones it recommends.
SUPPORTED_JWT_ALGORITHMS = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
DEFAULT_JWT_ALGORITHMS = ("ES384", "RS384")


def default_state_dir() -> Path:
    """Per-user directory for state shared by the worker processes (the JWT replay cache)."""
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"b12-cds-service-{uid}"


class SettingsError(ValueError):
    """A CDS_* variable has a value that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    knowledge_dir: Path = DEFAULT_KNOWLEDGE_DIR
    parameters_file: Path | None = None
    max_body_bytes: int = 25 * 1024 * 1024  # a 10,000-resource prefetch is about 12 MB
    fhir_connect_timeout: float = 2.0
    fhir_read_timeout: float = 5.0
    fhir_total_timeout: float = 8.0
    fhir_max_pages: int = 50
    fhir_max_call_bytes: int = 24 * 1024 * 1024  # all FHIR responses of one call together
    # FHIR servers receive the EHR's bearer token: plain http is for local development only.
    allow_http_fhir_server: bool = False
    # Development only: fhirServer may resolve to loopback and private addresses (never link-local).
    allow_private_fhir_addresses: bool = False
    max_resources: int = 20_000  # per call, prefetched and fetched together (422 beyond)
    max_evaluation_seconds: float = 20.0  # per call, checked between stages (422 beyond); < call_timeout
    log_level: str = "INFO"
    # --- serving (cds_service/serving/, docs/security.md s9) ---
    header_read_timeout: float = 10.0  # a client must send its request line and headers within this
    body_read_timeout: float = 30.0  # ... and then its whole body within this (25 MB at ~7 Mbit/s)
    call_timeout: float = 25.0  # a call still running then is answered 503 JSON
    threads: int = 4  # threads running calls, per worker process
    worker_max_rss_mib: int = 1024  # a worker whose memory stays above this is replaced
    # --- authentication of CDS clients (docs/security.md) ---
    # JSON file of trusted JWT issuers; required while authentication is on.
    trusted_issuers_file: Path | None = None
    # Development only: accept calls without a JWT (a loud warning at every start).
    auth_disabled: bool = False
    # Externally visible base URL(s) of this service, e.g. https://cds.example.org behind a proxy;
    # the JWT `aud` must be one of them + the request path. Empty: the URL the request arrived at.
    public_base_urls: tuple[str, ...] = ()
    # `cds-service serve` sets it: with any issuer that is not development-only, the above is required.
    require_public_base_url: bool = False
    jwt_algorithms: tuple[str, ...] = DEFAULT_JWT_ALGORITHMS
    jwt_max_lifetime: float = 300.0  # seconds between iat and exp
    jwt_clock_skew: float = 60.0  # seconds of tolerance on exp, iat and nbf
    jwks_cache_seconds: float = 3600.0  # a fetched JWKS is used this long (an unknown kid refreshes sooner)
    # Browser origins allowed by CORS (exact "scheme://host[:port]", or "*"); none by default.
    cors_allowed_origins: tuple[str, ...] = ()
    # Where state shared by the worker processes lives (the jti replay cache); None: default_state_dir().
    state_dir: Path | None = None
    # An order card shown at order-select is not repeated at order-sign within this window.
    duplicate_card_window_seconds: int = 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            knowledge_dir=Path(env.get("CDS_KNOWLEDGE_DIR", str(defaults.knowledge_dir))),
            parameters_file=Path(env["CDS_KNOWLEDGE_PARAMETERS"]) if env.get("CDS_KNOWLEDGE_PARAMETERS") else None,
            max_body_bytes=_int(env, "CDS_MAX_BODY_BYTES", defaults.max_body_bytes, minimum=1024),
            fhir_connect_timeout=_float(env, "CDS_FHIR_CONNECT_TIMEOUT", defaults.fhir_connect_timeout),
            fhir_read_timeout=_float(env, "CDS_FHIR_READ_TIMEOUT", defaults.fhir_read_timeout),
            fhir_total_timeout=_float(env, "CDS_FHIR_TOTAL_TIMEOUT", defaults.fhir_total_timeout),
            fhir_max_pages=_int(env, "CDS_FHIR_MAX_PAGES", defaults.fhir_max_pages, minimum=1),
            fhir_max_call_bytes=_int(env, "CDS_FHIR_MAX_CALL_BYTES", defaults.fhir_max_call_bytes, minimum=1024),
            allow_http_fhir_server=_bool(env, "CDS_ALLOW_HTTP_FHIR_SERVER", defaults.allow_http_fhir_server),
            allow_private_fhir_addresses=_bool(env, "CDS_ALLOW_PRIVATE_FHIR_ADDRESSES", defaults.allow_private_fhir_addresses),
            max_resources=_int(env, "CDS_MAX_RESOURCES", defaults.max_resources, minimum=1),
            max_evaluation_seconds=_float(env, "CDS_MAX_EVALUATION_SECONDS", defaults.max_evaluation_seconds),
            log_level=env.get("CDS_LOG_LEVEL", defaults.log_level).upper(),
            header_read_timeout=_float(env, "CDS_HEADER_READ_TIMEOUT", defaults.header_read_timeout),
            body_read_timeout=_float(env, "CDS_BODY_READ_TIMEOUT", defaults.body_read_timeout),
            call_timeout=_float(env, "CDS_CALL_TIMEOUT", defaults.call_timeout),
            threads=_int(env, "CDS_THREADS", defaults.threads, minimum=1),
            worker_max_rss_mib=_int(env, "CDS_WORKER_MAX_RSS_MIB", defaults.worker_max_rss_mib, minimum=128),
            trusted_issuers_file=Path(env["CDS_TRUSTED_ISSUERS"]) if env.get("CDS_TRUSTED_ISSUERS", "").strip() else None,
            auth_disabled=_bool(env, "CDS_INSECURE_DISABLE_AUTH", defaults.auth_disabled),
            public_base_urls=_base_urls(env, "CDS_PUBLIC_BASE_URL"),
            jwt_algorithms=_algorithms(env, "CDS_JWT_ALGORITHMS", defaults.jwt_algorithms),
            jwt_max_lifetime=_float(env, "CDS_JWT_MAX_LIFETIME", defaults.jwt_max_lifetime),
            jwt_clock_skew=_float(env, "CDS_JWT_CLOCK_SKEW", defaults.jwt_clock_skew, allow_zero=True),
            jwks_cache_seconds=_float(env, "CDS_JWKS_CACHE_SECONDS", defaults.jwks_cache_seconds),
            cors_allowed_origins=_origins(env, "CDS_CORS_ALLOWED_ORIGINS"),
            state_dir=Path(env["CDS_STATE_DIR"]) if env.get("CDS_STATE_DIR", "").strip() else None,
            duplicate_card_window_seconds=_int(env, "CDS_DUPLICATE_CARD_WINDOW_SECONDS", defaults.duplicate_card_window_seconds),
        )

    @property
    def effective_state_dir(self) -> Path:
        return self.state_dir if self.state_dir is not None else default_state_dir()


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, allow_zero: bool = False) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise SettingsError(f"{name} must be a finite number of seconds, got {raw!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise SettingsError(f"{name} must be {'zero or more' if allow_zero else 'positive'}, got {value}")
    return value


def _items(env: Mapping[str, str], name: str) -> list[str]:
    return [item.strip() for item in env.get(name, "").split(",") if item.strip()]


def _base_urls(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    urls = []
    for item in _items(env, name):
        parts = urlsplit(item)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or "@" in parts.netloc:
            raise SettingsError(
                f"{name} must be comma-separated absolute http(s) URLs without query, e.g. https://cds.example.org, got {item!r}"
            )
        urls.append(item.rstrip("/"))
    return tuple(urls)


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    origins = []
    for item in _items(env, name):
        if item == "*":
            origins.append(item)
            continue
        parts = urlsplit(item)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
                or parts.query or parts.fragment or "@" in parts.netloc:
            raise SettingsError(
                f"{name} must be comma-separated origins like https://sandbox.cds-hooks.org or http://localhost:8080 "
                f"(scheme, host and port only), or *, got {item!r}"
            )
        origins.append(item.rstrip("/"))
    return tuple(origins)


def _algorithms(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    items = _items(env, name)
    if not items:
        return default
    for item in items:
        if item not in SUPPORTED_JWT_ALGORITHMS:
            forbidden = item.lower() == "none" or item.upper().startswith("HS")
            why = "is never allowed (CDS Hooks forbids none and symmetric algorithms)" if forbidden else "is not supported"
            raise SettingsError(f"{name}: {item!r} {why}; choose from {', '.join(SUPPORTED_JWT_ALGORITHMS)}")
    return tuple(dict.fromkeys(items))


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")
