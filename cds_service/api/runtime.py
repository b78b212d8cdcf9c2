"""What the HTTP layer needs at hand, built once per process by the app factory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..fhir.client import FhirClient
from ..knowledge.model import KnowledgeBase
from ..settings import Settings
from ..store.shown_cards import ShownCardStore


@dataclass(frozen=True)
class CdsRuntime:
    settings: Settings
    knowledge: KnowledgeBase
    fhir_client: FhirClient
    clock: Callable[[], datetime]
    shown_cards: ShownCardStore | None = None  # order-select cards, not repeated at order-sign
