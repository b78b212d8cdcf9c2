"""Application factory: wire settings, knowledge and the FHIR client into a Flask app."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone

from flask import Flask

from .api import health, hooks
from .api.errors import register_error_handlers
from .api.runtime import CdsRuntime
from .fhir.client import FetchLimits, FhirClient
from .fhir.resources import warm_up_models
from .jsonio import OrjsonProvider
from .knowledge.loader import load_knowledge
from .knowledge.model import KnowledgeBase
from .settings import Settings

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def create_app(
    settings: Settings | None = None,
    *,
    knowledge: KnowledgeBase | None = None,
    fhir_client: FhirClient | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> Flask:
    settings = settings or Settings.from_env()
    knowledge = knowledge or load_knowledge(settings.knowledge_dir, settings.parameters_file)
    fhir_client = fhir_client or FhirClient(
        FetchLimits(
            connect_timeout=settings.fhir_connect_timeout,
            read_timeout=settings.fhir_read_timeout,
            total_timeout=settings.fhir_total_timeout,
            max_pages=settings.fhir_max_pages,
        )
    )
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json = OrjsonProvider(app)
    app.extensions["cds_runtime"] = CdsRuntime(settings=settings, knowledge=knowledge, fhir_client=fhir_client, clock=clock)
    app.register_blueprint(hooks.blueprint)
    app.register_blueprint(health.blueprint)
    register_error_handlers(app)
    warm_up_models()
    if settings.allow_http_fhir_server:
        logger.warning("CDS_ALLOW_HTTP_FHIR_SERVER is on: EHR access tokens may be sent over plain http. Development only.")
    logger.warning(
        "CDS Hooks JWT verification is not implemented in this build: callers are not authenticated. "
        "Run it only where the network restricts who can reach it."
    )
    return app
