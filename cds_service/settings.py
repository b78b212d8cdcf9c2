"""One typed settings object, read from CDS_* environment variables with safe defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_KNOWLEDGE_DIR = Path(__file__).resolve().parent.parent / "plan_definitions"


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
    # FHIR servers receive the EHR's bearer token: plain http is for local development only.
    allow_http_fhir_server: bool = False
    log_level: str = "INFO"

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
            allow_http_fhir_server=_bool(env, "CDS_ALLOW_HTTP_FHIR_SERVER", defaults.allow_http_fhir_server),
            log_level=env.get("CDS_LOG_LEVEL", defaults.log_level).upper(),
        )


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


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {value}")
    return value


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
