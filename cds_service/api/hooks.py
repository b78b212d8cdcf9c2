"""CDS Hooks HTTP faces: discovery, service calls and feedback. Thin: parse, call, answer."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
from flask import Blueprint, current_app, request

from ..fhir.gather import DataUnavailable, gather_record
from ..knowledge.cards import to_cds_response
from ..knowledge.engine import HookContext, apply_service
from ..protocol.models import HookRequest
from ..protocol.validation import RequestValidationError, validate_feedback_request
from .dedupe import without_repeats
from .errors import json_error
from .runtime import CdsRuntime

logger = logging.getLogger(__name__)

blueprint = Blueprint("cds_hooks", __name__)

_JSON_TYPES = ("application/json", "application/fhir+json")


def _runtime() -> CdsRuntime:
    return current_app.extensions["cds_runtime"]


@blueprint.get("/cds-services")
def discovery() -> Any:
    services = []
    for service in _runtime().knowledge.services.values():
        entry = {"hook": service.hook, "title": service.title, "description": service.description, "id": service.id}
        if service.prefetch:
            entry["prefetch"] = dict(service.prefetch)
        services.append(entry)
    return {"services": services}


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Any:
    started = time.perf_counter()
    runtime = _runtime()
    service = runtime.knowledge.services.get(service_id)
    if service is None:
        return json_error(404, "unknown_service", f"no CDS service with id {service_id!r}; see GET /cds-services")
    body = _read_json()
    if isinstance(body, tuple):
        return body
    try:
        hook_request = HookRequest.from_json(body, expected_hook=service.hook)
        _check_prefetch_bundles(hook_request.prefetch, service.prefetch)
    except RequestValidationError as exc:
        return exc.to_json(), 400
    try:
        record = gather_record(hook_request, service, runtime.fhir_client, runtime.settings.allow_http_fhir_server)
    except DataUnavailable as exc:
        logger.warning("service %s hookInstance %s: 412, data unavailable for %s", service.id, hook_request.hook_instance, sorted(exc.problems))
        response = json_error(412, "precondition_failed", "data the recommendations need could not be obtained from prefetch or the FHIR server")
        response[0]["prefetch"] = exc.problems
        return response
    context = hook_context(hook_request)
    result = apply_service(runtime.knowledge, service, record, context, runtime.clock())
    cards = without_repeats(result.cards, context, runtime.shown_cards)
    response = to_cds_response(cards, hook_request.hook_instance)
    logger.info(
        "service %s hookInstance %s: %d card(s) %s in %.1f ms",
        service.id, hook_request.hook_instance, len(cards),
        [card.recommendation.id for card in cards], (time.perf_counter() - started) * 1000,
    )
    return response


@blueprint.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Any:
    if service_id not in _runtime().knowledge.services:
        return json_error(404, "unknown_service", f"no CDS service with id {service_id!r}")
    body = _read_json()
    if isinstance(body, tuple):
        return body
    try:
        validate_feedback_request(body)
    except RequestValidationError as exc:
        return exc.to_json(), 400
    for item in body["feedback"]:
        logger.info("feedback for service %s: card %s %s", service_id, item.get("card"), item.get("outcome"))
    return {}


def hook_context(hook_request: HookRequest) -> HookContext:
    drafts = hook_request.draft_orders
    if hook_request.hook == "order-select":
        wanted = set(hook_request.selections)
        selected = tuple(r for r in drafts if f"{r.get('resourceType')}/{r.get('id')}" in wanted)
        # An EHR whose draft orders carry no ids cannot point at them: judge all drafts.
        if not selected:
            selected = drafts
    else:
        selected = drafts
    return HookContext(
        hook=hook_request.hook,
        hook_instance=hook_request.hook_instance,
        patient_id=hook_request.patient_id,
        user_id=hook_request.user_id,
        encounter_id=hook_request.encounter_id,
        draft_orders=drafts,
        selected_orders=selected,
    )


def _check_prefetch_bundles(prefetch: Any, requested: Mapping[str, str]) -> None:
    """Bundle structure the prefetch reader relies on (the JSON Schema leaves Bundles open).

    In a key this service asked for, a Bundle whose ``entry`` or ``link`` is not an array, or
    whose entries are not objects, is not FHIR: 400 naming the member. Keys the service never
    asked for are ignored whatever they hold, and resources that are objects but fail FHIR
    validation are ignored by the record.
    """
    if not isinstance(prefetch, dict):
        return
    for key in requested:
        value = prefetch.get(key)
        if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
            continue
        where = f"prefetch.{key}"
        entries = value.get("entry")
        if entries is not None and not isinstance(entries, list):
            raise RequestValidationError(f"{where}.entry", "must be of type array")
        for index, entry in enumerate(entries or ()):
            if not isinstance(entry, dict):
                raise RequestValidationError(f"{where}.entry.{index}", "must be of type object")
            for member in ("resource", "search"):
                if entry.get(member) is not None and not isinstance(entry[member], dict):
                    raise RequestValidationError(f"{where}.entry.{index}.{member}", "must be of type object")
        links = value.get("link")
        if links is not None and not isinstance(links, list):
            raise RequestValidationError(f"{where}.link", "must be of type array")
        for index, link in enumerate(links or ()):
            if not isinstance(link, dict):
                raise RequestValidationError(f"{where}.link.{index}", "must be of type object")


def _read_json() -> Any:
    """The request body as JSON, or an error response tuple."""
    mimetype = request.mimetype
    if mimetype and mimetype not in _JSON_TYPES:
        return json_error(415, "unsupported_media_type", f"send the request as application/json, not {mimetype}")
    raw = request.get_data(cache=False)  # raises 413 beyond MAX_CONTENT_LENGTH
    if not raw:
        return json_error(400, "invalid_request", "the request body is empty; a JSON object is required")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return json_error(400, "malformed_json", f"the request body is not valid JSON ({_reason(exc)})")


def _reason(exc: orjson.JSONDecodeError) -> str:
    # Position and kind of the problem, without echoing the body (it may hold PHI or a token).
    return f"{exc.msg} at line {exc.lineno} column {exc.colno}"

