"""The draft orders of an order hook: read, selected, and those that cannot be checked.

``context.draftOrders`` is read with the same reader as the record (lenient in shape, strict
in value), so a sandbox draft whose ``category`` is one object, or a DSTU2 ``MedicationOrder``,
is judged like any R4 MedicationRequest. A draft whose ordered item (its medication, or the
test of a ServiceRequest) is there but cannot be read is never judged "no problem" silently:
it is listed as unreadable, and the knowledge answers with a card saying the order could not
be checked and why. A draft with nothing picked yet (the sandbox's Rx View before a drug is
chosen) is neither: there is nothing to check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..fhir.reader import ORDERED_ITEM, ReadProblem, ReadResult, ResourceReader, type_name
from ..fhir.resources import codings, medication_concept
from ..fhir.versions import RESOURCE_TYPES
from .models import HookRequest

_ITEM_TEXT_MAX = 120  # characters of the item's name shown on the card


@dataclass(frozen=True, slots=True)
class DraftOrders:
    drafts: tuple[Mapping[str, Any], ...]  # every draft that could be read, R4-shaped
    selected: tuple[Mapping[str, Any], ...]  # the ones this call is about
    unreadable: tuple[Mapping[str, Any], ...]  # selected drafts that cannot be checked: order, item, reason
    problems: tuple[ReadProblem, ...]


def read_draft_orders(
    request: HookRequest, reader: ResourceReader, resolve: Callable[[str], Mapping[str, Any] | None]
) -> DraftOrders:
    """``resolve`` finds a referenced resource (a Medication) among those the call was given."""
    all_drafts = request.draft_orders
    chosen_ids = {id(raw) for raw in all_drafts}
    if request.hook == "order-select":
        wanted = set(request.selections)
        picked = {id(raw) for raw in all_drafts if f"{raw.get('resourceType')}/{raw.get('id')}" in wanted}
        chosen_ids = picked or chosen_ids  # an EHR whose drafts carry no ids cannot point at them: judge all
    # A draft with nothing picked yet is not an order to judge (the sandbox's Rx View opens so).
    raw_drafts = tuple(raw for raw in all_drafts if _ordered_item_keys(raw))
    results = [reader.read(raw) for raw in raw_drafts]
    chosen: Sequence[int] = [index for index, raw in enumerate(raw_drafts) if id(raw) in chosen_ids]
    unreadable = [
        found for index in chosen if (found := _unreadable_order(raw_drafts[index], results[index], resolve)) is not None
    ]
    return DraftOrders(
        drafts=tuple(result.resource for result in results if result.resource is not None),
        selected=tuple(results[index].resource for index in chosen if results[index].resource is not None),  # type: ignore[misc]
        unreadable=tuple(unreadable),
        problems=tuple(problem for result in results for problem in result.problems),
    )


def _unreadable_order(
    raw: Mapping[str, Any], result: ReadResult, resolve: Callable[[str], Mapping[str, Any] | None]
) -> dict[str, Any] | None:
    item = _ordered_item(raw)
    resource = result.resource
    if resource is None:
        order = type_name(raw.get("resourceType")) or "(unknown)"
        return {"order": order, "item": _item_text(raw, item), "reason": "the order is not a resource type this service can read"}
    order = f"{resource['resourceType']}/{resource.get('id', '(no id)')}"
    reasons = [f"{problem.element}: {problem.issue}" for problem in result.problems if problem.element.startswith(item)]
    concept = medication_concept(resource, resolve) if item == "medication" else resource.get(item)
    if _is_coded(concept):
        return None
    if not reasons:
        reference = (resource.get("medicationReference") or {}).get("reference") if item == "medication" else None
        if isinstance(reference, str) and concept is None:
            reasons = ["the Medication it refers to was not sent with the request"]
        else:
            reasons = [f"the {'medication' if item == 'medication' else 'ordered item'} has no code (only text)"]
    return {"order": order, "item": _item_text(raw, item), "reason": "; ".join(reasons)}


def _ordered_item(raw: Mapping[str, Any]) -> str:
    """The element that says what a draft orders: ``medication`` ([x]) or ``code``."""
    sent_type = raw.get("resourceType")
    resource_type = RESOURCE_TYPES.get(sent_type, sent_type) if isinstance(sent_type, str) else None
    return ORDERED_ITEM.get(resource_type or "", "medication")


def _ordered_item_keys(raw: Mapping[str, Any]) -> list[str]:
    item = _ordered_item(raw)
    return [key for key in raw if key == item or (key.startswith(item) and key[len(item):][:1].isupper())]


def _is_coded(concept: Any) -> bool:
    return any(isinstance(c.get("system"), str) and isinstance(c.get("code"), str) for c in codings(concept))


def _item_text(raw: Mapping[str, Any], item: str) -> str | None:
    """The item's name as the EHR wrote it (for the clinician, never for the log)."""
    concept = raw.get(f"{item}CodeableConcept") if item == "medication" else raw.get(item)
    if isinstance(concept, list) and len(concept) == 1:
        concept = concept[0]
    if not isinstance(concept, Mapping):
        return None
    text = concept.get("text")
    if not isinstance(text, str):
        coding = concept.get("coding")
        first = coding[0] if isinstance(coding, list) and coding else coding
        text = first.get("display") if isinstance(first, Mapping) else None
    if not isinstance(text, str) or not text.strip():
        return None
    return " ".join(text.split())[:_ITEM_TEXT_MAX]
