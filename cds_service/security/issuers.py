"""The trusted issuers file (``CDS_TRUSTED_ISSUERS``): which CDS clients may call, and their keys.

Format (docs/security.md has the full description)::

    {
      "issuers": {
        "https://ehr.example.org": {
          "jwks_url": "https://ehr.example.org/.well-known/jwks.json",
          "tenant": ["org-1"]
        },
        "https://sandbox.cds-hooks.org": {
          "development_only": true,
          "jwks": {"keys": [ ... ]},
          "jku": ["https://sandbox.cds-hooks.org/.well-known/jwks.json"],
          "origins": ["http://localhost:8080"]
        }
      }
    }

Every problem is reported with the file and the field, and stops the service from starting.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from .errors import SecurityConfigError
from .fhir_servers import FhirServerEntryError, FhirServerList, parse_fhir_servers
from .jwks import JwkError, KeySet, RemoteJwks, StaticJwks, parse_jwk_set

log = logging.getLogger(__name__)

# The CDS Hooks sandbox signs with a private key that is published in its repository.
SANDBOX_ISSUER = "https://sandbox.cds-hooks.org"
SANDBOX_PUBLIC_KEY_X = "dw_JGR8nB2I6XveNxUOl2qk699ZPLM2nYI5STSdiEl9avAkrm3CkfYMbrrjr8laB"

_ROOT_FIELDS = ("issuers", "description", "$comment")
_ISSUER_FIELDS = ("jwks_url", "jwks", "jku", "tenant", "origins", "fhir_servers", "development_only", "description", "$comment")
_LOOPBACK_NAMES = ("localhost",)


class IssuerConfigError(SecurityConfigError):
    """The trusted issuers file cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class TrustedIssuer:
    iss: str
    keys: StaticJwks | RemoteJwks = field(repr=False)
    # jku header values this issuer's tokens may carry (compared, never fetched).
    allowed_jku: frozenset[str] = frozenset()
    # When non-empty, tokens must carry a `tenant` claim from this set.
    tenants: frozenset[str] = frozenset()
    # Browser origins this client calls from; they join the CORS allow-list.
    origins: tuple[str, ...] = ()
    # The FHIR server base URLs its calls may name as fhirServer; empty: none (prefetch only).
    fhir_servers: FhirServerList = field(default_factory=FhirServerList)
    development_only: bool = False
    # The private key of this issuer is public (the CDS Hooks sandbox): development only.
    publicly_known_key: bool = False


@dataclass(frozen=True)
class TrustedIssuers:
    source: Path | None
    issuers: Mapping[str, TrustedIssuer]

    def get(self, iss: str) -> TrustedIssuer | None:
        return self.issuers.get(iss)

    def origins(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(origin for issuer in self.issuers.values() for origin in issuer.origins))

    def insecure(self) -> list[TrustedIssuer]:
        return [i for i in self.issuers.values() if i.development_only or i.publicly_known_key]


def load_trusted_issuers(path: Path, *, jwks_cache_seconds: float = 3600.0, jwks_cooldown: float = 30.0) -> TrustedIssuers:
    where = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise IssuerConfigError(f"{where}: the trusted issuers file (CDS_TRUSTED_ISSUERS) does not exist") from None
    except OSError as exc:
        raise IssuerConfigError(f"{where}: cannot read the trusted issuers file ({exc.strerror})") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise IssuerConfigError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    return parse_trusted_issuers(data, where, path=path, jwks_cache_seconds=jwks_cache_seconds, jwks_cooldown=jwks_cooldown)


def parse_trusted_issuers(
    data: Any, where: str, *, path: Path | None = None, jwks_cache_seconds: float = 3600.0, jwks_cooldown: float = 30.0
) -> TrustedIssuers:
    if not isinstance(data, dict):
        raise IssuerConfigError(f'{where}: must be a JSON object with an "issuers" object')
    _unknown_fields(data, _ROOT_FIELDS, where, "")
    issuers = data.get("issuers")
    if not isinstance(issuers, dict) or not issuers:
        raise IssuerConfigError(f'{where}: "issuers" must be a non-empty object mapping each issuer (iss) to its keys')
    parsed: dict[str, TrustedIssuer] = {}
    for iss, entry in issuers.items():
        parsed[iss] = _issuer(iss, entry, where, jwks_cache_seconds, jwks_cooldown)
    return TrustedIssuers(source=path, issuers=parsed)


def _issuer(iss: str, entry: Any, where: str, cache_seconds: float, cooldown: float) -> TrustedIssuer:
    at = f"issuers[{iss!r}]"
    if not iss.strip() or iss != iss.strip():
        raise IssuerConfigError(f"{where}: {at}: the issuer must be the exact, non-empty iss value of its tokens")
    if not isinstance(entry, dict):
        raise IssuerConfigError(f"{where}: {at}: must be an object with jwks_url or jwks")
    _unknown_fields(entry, _ISSUER_FIELDS, where, f"{at}.")
    if ("jwks_url" in entry) == ("jwks" in entry):
        raise IssuerConfigError(f"{where}: {at}: give exactly one of jwks_url (fetched from that URL) or jwks (inline JWK Set)")

    allowed_jku = set(_strings(entry, "jku", where, at))
    for jku in allowed_jku:
        _check_url(jku, where, f"{at}.jku")
    keys: StaticJwks | RemoteJwks
    publicly_known = False
    if "jwks_url" in entry:
        url = entry["jwks_url"]
        if not isinstance(url, str):
            raise IssuerConfigError(f"{where}: {at}.jwks_url: must be a string URL")
        _check_url(url, where, f"{at}.jwks_url")
        keys = RemoteJwks(url, cache_seconds=cache_seconds, cooldown=cooldown)
        allowed_jku.add(url)
    else:
        try:
            key_set = KeySet(parse_jwk_set(entry["jwks"], strict=True))
        except JwkError as exc:
            raise IssuerConfigError(f"{where}: {at}.jwks: {exc}") from None
        keys = StaticJwks(key_set)
        publicly_known = any(jwk.get("x") == SANDBOX_PUBLIC_KEY_X for jwk in key_set.jwks()["keys"])

    development_only = entry.get("development_only", False)
    if not isinstance(development_only, bool):
        raise IssuerConfigError(f"{where}: {at}.development_only: must be true or false")
    origins = tuple(_origin(o, where, f"{at}.origins") for o in _strings(entry, "origins", where, at))
    try:
        fhir_servers = parse_fhir_servers(_strings(entry, "fhir_servers", where, at))
    except FhirServerEntryError as exc:
        raise IssuerConfigError(f"{where}: {at}.fhir_servers: {exc}") from None
    return TrustedIssuer(
        iss=iss,
        keys=keys,
        allowed_jku=frozenset(allowed_jku),
        tenants=frozenset(_strings(entry, "tenant", where, at)),
        origins=origins,
        fhir_servers=fhir_servers,
        development_only=development_only,
        publicly_known_key=publicly_known or iss == SANDBOX_ISSUER,
    )


def _strings(entry: Mapping[str, Any], name: str, where: str, at: str) -> list[str]:
    """A member that may be one string or an array of strings."""
    value = entry.get(name)
    if value is None:
        return []
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise IssuerConfigError(f"{where}: {at}.{name}: must be a non-empty string or an array of non-empty strings")
    return values


def _check_url(url: str, where: str, at: str) -> None:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host and "@" not in parts.netloc:
        return
    if parts.scheme == "http" and _is_loopback(host):
        return  # a local test issuer
    raise IssuerConfigError(f"{where}: {at}: must be an https URL (http only for localhost), got {url!r}")


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(origin: str, where: str, at: str) -> str:
    parts = urlsplit(origin)
    if origin == "*" or parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or "@" in parts.netloc:
        raise IssuerConfigError(f"{where}: {at}: {origin!r} is not an origin like https://sandbox.cds-hooks.org or http://localhost:8080")
    return origin.rstrip("/")


def _unknown_fields(entry: Mapping[str, Any], known: tuple[str, ...], where: str, at: str) -> None:
    for name in entry:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
            raise IssuerConfigError(f"{where}: {at}{name}: unknown field{hint}")
