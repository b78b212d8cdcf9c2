"""Map engine results to CDS Hooks 2.0 cards (HL7 PlanDefinition -> CDS Hooks mapping).

| card field        | from                                                        |
|-------------------|-------------------------------------------------------------|
| summary / detail  | action.title / action.description (rendered templates)      |
| indicator         | action.priority: routine=info, urgent=warning, stat=critical |
| source            | action.documentation[0]; topic = {knowledge base, rec. id}   |
| suggestions       | child actions; their actions from ActivityDefinitions/deletes |
| overrideReasons   | the action's override-reason extensions                       |
| links             | PlanDefinition.relatedArtifact with a url                     |

UUIDs are name-based (hookInstance + recommendation + action): stable for one call, so
feedback can be tied back to the recommendation without storing anything.
"""

from __future__ import annotations

import uuid
from typing import Any

from .engine import CardResult, SuggestionResult

_NAMESPACE = uuid.UUID("6f1f2c8e-5b0e-4c53-9a57-b12b12b12b12")


def card_uuid(hook_instance: str, recommendation_id: str, action_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{hook_instance}|{recommendation_id}|{action_id}"))


def to_cds_card(result: CardResult, hook_instance: str) -> dict[str, Any]:
    recommendation, definition = result.recommendation, result.definition
    card_id = card_uuid(hook_instance, recommendation.id, definition.id)
    source: dict[str, Any] = {
        "label": definition.source.label,
        "topic": {"system": recommendation.topic_system, "code": recommendation.id, "display": recommendation.title},
    }
    if definition.source.url:
        source["url"] = definition.source.url
    card: dict[str, Any] = {
        "uuid": card_id,
        "summary": result.summary,
        "indicator": result.indicator,
        "source": source,
    }
    if result.detail:
        card["detail"] = result.detail
    if result.suggestions:
        card["suggestions"] = [_suggestion(s, card_id) for s in result.suggestions]
        card["selectionBehavior"] = definition.selection_behavior or "any"
    if definition.override_reasons:
        card["overrideReasons"] = [reason.to_json() for reason in definition.override_reasons]
    if recommendation.links:
        card["links"] = [{"label": link.label, "url": link.url, "type": "absolute"} for link in recommendation.links]
    return card


def _suggestion(suggestion: SuggestionResult, card_id: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "label": suggestion.label,
        "uuid": str(uuid.uuid5(_NAMESPACE, f"{card_id}|{suggestion.id}")),
        "actions": [],
    }
    if suggestion.recommended:
        data["isRecommended"] = True
    for action in suggestion.actions:
        item: dict[str, Any] = {"type": action.type, "description": action.description or action.type}
        if action.resource is not None:
            item["resource"] = action.resource
        if action.resource_id is not None:
            item["resourceId"] = action.resource_id
        data["actions"].append(item)
    return data


def to_cds_response(results: list[CardResult], hook_instance: str) -> dict[str, Any]:
    return {"cards": [to_cds_card(result, hook_instance) for result in results]}
