"""Application factory: wire settings, knowledge and the FHIR client into a Flask app."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask

from . import security
from .api import health, hooks
from .api.errors import register_error_handlers
from .api.runtime import CdsRuntime
from .fhir.client import FetchLimits, FhirClient
from .jsonio import OrjsonProvider
from .knowledge.loader import load_knowledge
from .knowledge.model import KnowledgeBase
from .settings import Settings
from .store.shown_cards import ShownCardStore


def utc_now() -> datetime:
    return datetime.now(UTC)


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
            max_call_bytes=settings.fhir_max_call_bytes,
            allow_private_addresses=settings.allow_private_fhir_addresses,
        )
    )
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json = OrjsonProvider(app)
    shown_cards = ShownCardStore(settings.effective_state_dir / "shown-cards.sqlite3", settings.duplicate_card_window_seconds)
    app.extensions["cds_runtime"] = CdsRuntime(
        settings=settings, knowledge=knowledge, fhir_client=fhir_client, clock=clock, shown_cards=shown_cards
    )
    app.register_blueprint(hooks.blueprint)
    app.register_blueprint(health.blueprint)
    register_error_handlers(app)
    security.init_app(app, settings)
    return app
