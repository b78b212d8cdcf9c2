"""The Flask hook that demands a valid CDS Hooks JWT on ``/cds-services`` and everything below it.

Not guarded: ``/healthz`` and every ``OPTIONS`` request (browsers send CORS preflights without
an Authorization header). A rejected call gets a bare 401 (``{"error": "unauthorized"}`` and
``WWW-Authenticate: Bearer``); the reason goes to the log with iss, kid and jti (safe to log per
CDS Hooks best practice), never the token or the Authorization header.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from flask import Flask, g, request

from .replay import ReplayCacheError
from .verifier import AuthError, JwtVerifier, _printable

log = logging.getLogger(__name__)

PROTECTED_PREFIX = "/cds-services"


def is_protected(path: str) -> bool:
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


def request_audiences(public_base_urls: Sequence[str]) -> list[str]:
    """The `aud` values acceptable for this request: each public base URL + path, else the URL as received."""
    if public_base_urls:
        return [base.rstrip("/") + request.path for base in public_base_urls]
    if not request.host:
        return []  # Werkzeug blanks an invalid Host header: no URL, so no acceptable aud
    return [request.base_url]


def install_auth(app: Flask, verifier: JwtVerifier | None, public_base_urls: Sequence[str]) -> None:
    """Guard the CDS Hooks routes with ``verifier``; ``None`` (CDS_INSECURE_DISABLE_AUTH) guards nothing."""

    @app.before_request
    def authenticate() -> Any:
        if verifier is None or request.method == "OPTIONS" or not is_protected(request.path):
            return None
        where = f"{request.method} {_printable(request.path, 200)}"
        scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            log.warning("401 %s: no Authorization: Bearer token", where)
            return _unauthorized(app)
        try:
            client = verifier.verify(token, request_audiences(public_base_urls))
        except AuthError as exc:
            log.warning("401 %s: JWT rejected: %s", where, exc.log_text())
            return _unauthorized(app)
        except ReplayCacheError as exc:
            log.error("503 %s: the JWT replay cache failed, refusing the call: %s", where, exc)
            response = app.json.response({"error": "unavailable", "message": "the service cannot check tokens right now"})
            response.status_code = 503
            response.headers["Retry-After"] = "5"
            return response
        g.cds_client = client
        log.debug("JWT accepted for %s: iss=%s jti=%s", where, _printable(client.iss), _printable(client.jti))
        return None


def _unauthorized(app: Flask) -> Any:
    response = app.json.response({"error": "unauthorized"})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = "Bearer"
    return response
