"""Alert fatigue across calls.

- A card shown at order-select is not repeated at order-sign for the same patient, encounter,
  recommendation and unchanged draft order. Critical cards are the exception: they are shown
  again when the order is signed, because signing is the moment the harm is committed (a
  clinician may have moved on from the order-select card without reading it).
- On patient-view, a card the knowledge marks "show once" (never a critical one) is shown at
  the first chart opening and not again for its number of days while it asks for the same
  things (its suggestions): a changed request is a new card."""

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


def show_once_key(card: CardResult, context: HookContext) -> str:
    asks_for = sorted(suggestion.label for suggestion in card.suggestions)
    material = "|".join([context.patient_id, card.recommendation.id, card.definition.id, *asks_for])
    return hashlib.sha256(material.encode()).hexdigest()


def without_repeats(cards: list[CardResult], context: HookContext, store: ShownCardStore | None) -> list[CardResult]:
    if store is None:
        return cards
    if context.hook == "patient-view":
        return _shown_once(cards, context, store)
    if context.hook not in _ORDER_HOOKS:
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


def _shown_once(cards: list[CardResult], context: HookContext, store: ShownCardStore) -> list[CardResult]:
    kept = []
    for card in cards:
        days = card.definition.show_once_days
        if days is None or card.indicator == "critical":
            kept.append(card)
            continue
        key = show_once_key(card, context)
        if store.all_shown([key]):
            logger.info("card %s/%s already shown for this patient with the same suggestions; not repeated", card.recommendation.id, card.definition.id)
            continue
        store.remember([key], ttl_seconds=days * 86400)
        kept.append(card)
    return kept


def _clinical_content(resource: Mapping[str, Any]) -> dict[str, Any]:
    # What makes two drafts "the same order" for advice: identity, product and dosing.
    return {
        key: resource.get(key)
        for key in ("resourceType", "id", "medicationCodeableConcept", "medicationReference", "dosageInstruction", "code")
        if key in resource
    }
