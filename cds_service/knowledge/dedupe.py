"""Alert fatigue across hooks: a card shown at order-select is not repeated at order-sign
for the same patient, encounter, recommendation and unchanged draft order.

Critical cards are the exception: they are shown again when the order is signed, because
signing is the moment the harm is committed (a clinician may have moved on from the
order-select card without reading it)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import orjson

from ..jsonio import json_default
from ..store.shown_cards import ShownCardStore
from .engine import CardResult, HookContext

logger = logging.getLogger(__name__)

_ORDER_HOOKS = ("order-select", "order-sign")


def card_keys(card: CardResult, context: HookContext) -> list[str]:
    """One key per draft the card is about; a changed draft (dose, product) is a new key."""
    keys = []
    for resource in card.focus:
        fingerprint = orjson.dumps(_clinical_content(resource), default=json_default, option=orjson.OPT_SORT_KEYS)
        material = b"|".join([
            context.patient_id.encode(), (context.encounter_id or "").encode(),
            card.recommendation.id.encode(), card.definition.id.encode(), fingerprint,
        ])
        keys.append(hashlib.sha256(material).hexdigest())
    return keys


def without_repeats(cards: list[CardResult], context: HookContext, store: ShownCardStore | None) -> list[CardResult]:
    if store is None or context.hook not in _ORDER_HOOKS:
        return cards
    kept = []
    for card in cards:
        if card.indicator == "critical":
            kept.append(card)
            continue
        keys = card_keys(card, context)
        if context.hook == "order-sign" and store.all_shown(keys):
            logger.info("card %s/%s already shown at order-select for these drafts; not repeated", card.recommendation.id, card.definition.id)
            continue
        if context.hook == "order-select":
            store.remember(keys)
        kept.append(card)
    return kept


def _clinical_content(resource: Mapping[str, Any]) -> dict[str, Any]:
    # What makes two drafts "the same order" for advice: identity, product and dosing.
    return {
        key: resource.get(key)
        for key in ("resourceType", "id", "medicationCodeableConcept", "medicationReference", "dosageInstruction", "code")
        if key in resource
    }
