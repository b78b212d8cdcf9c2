"""CORS for browser-based CDS clients (the CDS Hooks sandbox) on ``/cds-services`` and below.

Allowed origins are exact ``scheme://host[:port]`` values (``CDS_CORS_ALLOWED_ORIGINS`` plus the
``origins`` of trusted issuers), or ``*``; none by default, so a production service answers no
browser until configured. For an allowed ``Origin`` every response carries
``Access-Control-Allow-Origin``, errors (401, 4xx, 5xx) included, or the browser would hide
them. Preflight ``OPTIONS`` is answered here (204) before authentication: browsers send it
without the Authorization header. No credentials (cookies) are ever allowed: CDS clients
authenticate with the bearer JWT.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask, request

from .flask_auth import is_protected
from .verifier import normalize_origin

ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type"
MAX_AGE_SECONDS = "600"


def install_cors(app: Flask, origins: Iterable[str]) -> frozenset[str]:
    configured = list(origins)
    allow_any = "*" in configured
    allowed = frozenset(normalize_origin(o) for o in configured if o != "*")

    def origin_allowed(origin: str | None) -> bool:
        return origin is not None and origin != "" and (allow_any or normalize_origin(origin) in allowed)

    @app.before_request
    def preflight() -> Any:
        if request.method == "OPTIONS" and is_protected(request.path) and "Access-Control-Request-Method" in request.headers:
            return app.response_class(status=204)  # headers are added below, if the origin is allowed
        return None

    @app.after_request
    def add_headers(response: Any) -> Any:
        if not is_protected(request.path):
            return response
        response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if not origin_allowed(origin):
            return response
        response.headers["Access-Control-Allow-Origin"] = "*" if allow_any else origin
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            response.headers["Access-Control-Max-Age"] = MAX_AGE_SECONDS
            # Chrome's Private Network Access: a public page (https://sandbox.cds-hooks.org)
            # calling a service on localhost asks for this in the preflight.
            if request.headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
                response.headers["Access-Control-Allow-Private-Network"] = "true"
        return response

    return frozenset(configured)
