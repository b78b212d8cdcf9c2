"""Verification of one CDS Hooks JWT (CDS Hooks 2.0 "Trusting CDS Clients" and best practices).

In order, every step raising ``AuthError(reason)`` (the reason is for the log, never the client):

1. shape: a bounded ASCII compact JWS;
2. header: ``alg`` in the configured allow-list (asymmetric only: never ``none`` or HMAC),
   ``typ`` ``JWT``, a ``kid``;
3. ``iss`` (read unverified only to choose the issuer) is in the trusted issuers file;
4. ``jku``, when present, is one the file allows for that issuer (compared, never fetched);
5. the issuer's key for ``kid`` bound to ``alg`` (a fetched JWKS refreshes on an unknown kid);
6. signature, and the required claims iss, aud, exp, iat, jti (PyJWT with the PyJWK object);
7. ``aud`` is this endpoint's URL (string or array), ``exp``/``iat``/``nbf`` within the clock skew,
   lifetime ``exp - iat`` at most the configured maximum;
8. ``tenant`` in the issuer's list when it has one;
9. ``jti`` not seen before (shared replay cache), then remembered until exp + skew.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt
from jwt.exceptions import PyJWTError

from ..urls import split_http_url
from .fhir_servers import FhirServerList
from .issuers import TrustedIssuers
from .replay import ReplayCache

log = logging.getLogger(__name__)

MAX_TOKEN_CHARS = 8192
MAX_JTI_CHARS = 256
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")
_REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]  # no `sub`: CDS Hooks 2.0 JWTs have none


class AuthError(Exception):
    """The token is not acceptable. ``reason`` is safe to log; the client only ever gets a bare 401."""

    def __init__(self, reason: str, *, iss: object = None, kid: object = None, jti: object = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.iss = iss
        self.kid = kid
        self.jti = jti

    def log_text(self) -> str:
        parts = [self.reason]
        for name in ("iss", "kid", "jti"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={_printable(value)}")
        return " ".join(parts)


@dataclass(frozen=True)
class VerifiedClient:
    iss: str
    jti: str
    tenant: str | None
    expires: float
    fhir_servers: FhirServerList = field(default_factory=FhirServerList)  # what its calls may name as fhirServer


class JwtVerifier:
    def __init__(
        self,
        issuers: TrustedIssuers,
        replay_cache: ReplayCache,
        *,
        algorithms: Iterable[str] = ("ES384", "RS384"),
        max_lifetime: float = 300.0,
        clock_skew: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = issuers
        self._replay = replay_cache
        self._algorithms = frozenset(algorithms)
        if not self._algorithms or any(a.upper().startswith("HS") or a.lower() == "none" for a in self._algorithms):
            raise ValueError("JWT algorithms must be a non-empty set of asymmetric algorithms")
        self._max_lifetime = max_lifetime
        self._skew = clock_skew
        self._clock = clock

    def verify(self, token: str, audiences: Iterable[str]) -> VerifiedClient:
        """Check ``token`` for a request whose acceptable ``aud`` values are ``audiences``."""
        if len(token) > MAX_TOKEN_CHARS or not token.isascii() or not _COMPACT_JWS.fullmatch(token):
            raise AuthError("not a compact JWS")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (PyJWTError, ValueError, TypeError) as exc:
            raise AuthError(f"undecodable token ({type(exc).__name__})") from None

        iss, kid, jti = unverified.get("iss"), header.get("kid"), unverified.get("jti")
        context = {"iss": iss, "kid": kid, "jti": jti}
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise AuthError(f"algorithm {_printable(alg)} not allowed", **context)
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.upper() != "JWT":
            raise AuthError(f"header typ {_printable(typ)} is not JWT", **context)
        if not isinstance(kid, str) or not kid:
            raise AuthError("header has no kid", **context)
        if not isinstance(iss, str):
            raise AuthError("no iss claim", **context)
        issuer = self._issuers.get(iss)
        if issuer is None:
            raise AuthError("issuer not trusted", **context)
        jku = header.get("jku")
        if jku is not None and (not isinstance(jku, str) or jku not in issuer.allowed_jku):
            raise AuthError(f"jku {_printable(jku)} is not allow-listed for this issuer", **context)

        key = issuer.keys.lookup(kid).get(kid, alg)
        if key is None:
            raise AuthError(f"no key of this issuer has this kid for {alg}", **context)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=iss,
                options={
                    "require": _REQUIRED_CLAIMS,
                    "verify_aud": False,  # checked below, with URL normalisation
                    "verify_exp": False,  # checked below against our clock, with the lifetime bound
                    "verify_iat": False,
                    "verify_nbf": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except PyJWTError as exc:
            raise AuthError(f"rejected by signature or claim check ({type(exc).__name__})", **context) from None

        self._check_audience(claims["aud"], audiences, context)
        expires = self._check_times(claims, context)
        tenant = claims.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise AuthError("tenant claim is not a string", **context)
        if issuer.tenants and tenant not in issuer.tenants:
            raise AuthError(f"tenant {_printable(tenant)} not allowed for this issuer", **context)
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
            raise AuthError("jti is not a non-empty string of at most 256 characters", **context)
        if not self._replay.remember(iss, jti, expires + self._skew):
            raise AuthError("replayed jti", **context)
        return VerifiedClient(iss=iss, jti=jti, tenant=tenant, expires=expires, fhir_servers=issuer.fhir_servers)

    def _check_audience(self, aud: Any, audiences: Iterable[str], context: dict[str, Any]) -> None:
        values = [aud] if isinstance(aud, str) else aud
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise AuthError("aud is not a string or an array of strings", **context)
        wanted = {n for n in (normalize_url(a) for a in audiences) if n is not None}
        if not any(normalize_url(v) in wanted for v in values):
            shown = ", ".join(_printable(v) for v in values[:3])
            raise AuthError(f"aud {shown} is not exactly this endpoint ({', '.join(sorted(wanted))})", **context)

    def _check_times(self, claims: dict[str, Any], context: dict[str, Any]) -> float:
        now = self._clock()
        exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf")
        for name, value in (("exp", exp), ("iat", iat), ("nbf", nbf)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
                raise AuthError(f"{name} is not a number", **context)
        if exp <= now - self._skew:
            raise AuthError("expired", **context)
        if iat > now + self._skew:
            raise AuthError("iat is in the future", **context)
        if nbf is not None and nbf > now + self._skew:
            raise AuthError("not valid yet (nbf)", **context)
        if exp - iat > self._max_lifetime:
            raise AuthError(f"lifetime exp - iat = {exp - iat:.0f} s exceeds {self._max_lifetime:.0f} s", **context)
        if exp < iat:
            raise AuthError("exp is before iat", **context)
        return float(exp)


def normalize_origin(url: str) -> str:
    """scheme://host[:port], lower-cased, default port dropped: how origins and audiences compare."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def normalize_url(url: str) -> str | None:
    """RFC 3986 section 6.2.2 normalisation of an endpoint URL, or None when it is not one.

    Scheme and host lower-cased, the default port dropped, percent-encoded unreserved characters
    decoded and the others' hex upper-cased, an empty path made "/". Nothing else is forgiven:
    a query, a fragment, userinfo, whitespace, dot segments or a trailing "/" make a different
    URL (or none), so an ``aud`` matches only the exact endpoint."""
    if not isinstance(url, str) or not url or _NOT_IN_URL.search(url) or "?" in url or "#" in url:
        return None
    split = split_http_url(url)
    if split is None:
        return None
    scheme, host, port, parts = split
    path = _PERCENT.sub(_normalize_escape, parts.path) or "/"
    if any(segment in (".", "..") for segment in path.split("/")):
        return None
    if ":" in host:
        host = f"[{host}]"
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return f"{scheme}://{host}{path}"


_NOT_IN_URL = re.compile(r"[\x00-\x20\x7f\\]")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _normalize_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def _printable(value: object, limit: int = 120) -> str:
    """A value from an unverified token, safe for one log line (no control characters, bounded)."""
    text = repr(value) if not isinstance(value, str) else value
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = re.sub(r"[\x00-\x1f\x7f]", "?", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
