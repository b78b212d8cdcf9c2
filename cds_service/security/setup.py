"""Wire the perimeter into a Flask app: CORS, then JWT authentication on /cds-services."""

from __future__ import annotations

import logging

from flask import Flask

from ..settings import Settings
from .cors import install_cors
from .errors import SecurityConfigError
from .flask_auth import install_auth
from .issuers import TrustedIssuers, load_trusted_issuers
from .replay import ReplayCache, ReplayCacheError
from .verifier import JwtVerifier

logger = logging.getLogger(__name__)


def init_app(app: Flask, settings: Settings) -> None:
    """CORS, then JWT authentication on /cds-services (docs/security.md). Raises SecurityConfigError.
    Development shortcuts that weaken the perimeter are announced at every start."""
    if settings.allow_http_fhir_server:
        logger.warning("CDS_ALLOW_HTTP_FHIR_SERVER is on: EHR access tokens may be sent over plain http. Development only.")
    if settings.allow_private_fhir_addresses:
        logger.warning(
            "CDS_ALLOW_PRIVATE_FHIR_ADDRESSES is on: a caller may make this service fetch from loopback and private "
            "network addresses (server-side request forgery). Development only."
        )
    issuers: TrustedIssuers | None = None
    if settings.trusted_issuers_file is not None:
        issuers = load_trusted_issuers(settings.trusted_issuers_file, jwks_cache_seconds=settings.jwks_cache_seconds)
    origins = tuple(dict.fromkeys(settings.cors_allowed_origins + (issuers.origins() if issuers else ())))
    install_cors(app, origins)  # registered first: preflights are answered before authentication
    if origins:
        logger.info("CORS: browser origins allowed on /cds-services: %s", ", ".join(origins))
    if settings.auth_disabled:
        logger.warning(
            "AUTHENTICATION IS OFF (CDS_INSECURE_DISABLE_AUTH=true): CDS Hooks JWTs are not checked, so anyone who can "
            "reach this service can call it. For local development only; never run it like this with real patient data."
        )
        install_auth(app, None, settings.public_base_urls)
        return
    if issuers is None:
        raise SecurityConfigError(
            "authentication is on (the default) and no trusted issuers are configured: set CDS_TRUSTED_ISSUERS to a "
            "trusted issuers file (docs/security.md; to try the service with the CDS Hooks sandbox in development: "
            "CDS_TRUSTED_ISSUERS=config/trusted-issuers.sandbox-dev.json), or CDS_INSECURE_DISABLE_AUTH=true for "
            "local development without authentication"
        )
    for issuer in issuers.issuers.values():
        if not issuer.fhir_servers.entries:
            logger.warning("trusted issuer %s lists no fhir_servers: its calls get data from prefetch only", issuer.iss)
    for issuer in issuers.insecure():
        why = "its signing key is public, so anyone can mint tokens it accepts" if issuer.publicly_known_key else "it is marked development_only"
        logger.warning(
            "TRUSTING A DEVELOPMENT-ONLY ISSUER %s (%s, from %s): never use this configuration in production.",
            issuer.iss, why, issuers.source,
        )
    try:
        replay_cache = ReplayCache(settings.effective_state_dir)
    except ReplayCacheError as exc:
        raise SecurityConfigError(str(exc)) from None
    verifier = JwtVerifier(
        issuers,
        replay_cache,
        algorithms=settings.jwt_algorithms,
        max_lifetime=settings.jwt_max_lifetime,
        clock_skew=settings.jwt_clock_skew,
    )
    install_auth(app, verifier, settings.public_base_urls)
    logger.info(
        "authentication on: %d trusted issuer(s) from %s, algorithms %s, replay cache %s",
        len(issuers.issuers), issuers.source, ", ".join(settings.jwt_algorithms), replay_cache.path,
    )
    if not settings.public_base_urls:
        production = [issuer.iss for issuer in issuers.issuers.values() if issuer not in issuers.insecure()]
        if production and settings.require_public_base_url:
            raise SecurityConfigError(
                "CDS_PUBLIC_BASE_URL is not set: set it to the URL EHRs call this service at (e.g. https://cds.example.org). "
                "Without it the Host header, which the client chooses, would decide which JWT aud is accepted; only a "
                "trusted issuers file of development-only issuers (the sandbox) may run without it"
            )
        logger.warning(
            "CDS_PUBLIC_BASE_URL is not set: a JWT's aud is compared with the URL each request arrived at (its Host "
            "header, never X-Forwarded-*). Development only; set it in production"
        )
