"""CDS Hooks HTTP faces: discovery, service calls and feedback. Thin: parse, call, answer."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson
from flask import Blueprint, current_app, g, request

from ..budget import WorkBudget, WorkBudgetExceeded
from ..fhir.gather import DataUnavailable
from ..pipeline import decide
from ..protocol.models import HookRequest
from ..protocol.validation import RequestValidationError, validate_feedback_request
from .errors import json_error
from .runtime import CdsRuntime

logger = logging.getLogger(__name__)

blueprint = Blueprint("cds_hooks", __name__)

_JSON_TYPES = ("application/json", "application/fhir+json")


def _runtime() -> CdsRuntime:
    runtime: CdsRuntime = current_app.extensions["cds_runtime"]
    return runtime


@blueprint.get("/cds-services")
def discovery() -> Any:
    services = []
    for service in _runtime().knowledge.services.values():
        entry: dict[str, Any] = {"hook": service.hook, "title": service.title, "description": service.description, "id": service.id}
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
        settings = runtime.settings
        client = g.get("cds_client")  # None when authentication is off: any fhirServer (addresses still checked)
        decision = decide(
            runtime.knowledge, service, hook_request, runtime.fhir_client, runtime.clock(),
            allow_http_fhir_server=settings.allow_http_fhir_server, shown_cards=runtime.shown_cards,
            fhir_servers=client.fhir_servers if client is not None else None,
            budget=WorkBudget(settings.max_resources, settings.max_evaluation_seconds),
        )
    except RequestValidationError as exc:
        return exc.to_json(), 400
    except WorkBudgetExceeded as exc:
        logger.warning("service %s hookInstance %s: 422, %s", service.id, _loggable(hook_request.hook_instance), exc.what)
        return json_error(422, "work_budget_exceeded", f"{exc.what}; send less data (docs/security.md, budgets)")
    except DataUnavailable as exc:
        logger.warning("service %s hookInstance %s: 412, data unavailable for %s", service.id, _loggable(hook_request.hook_instance),
                       [_loggable(key) for key in sorted(exc.problems)])
        response = json_error(412, "precondition_failed", "data the recommendations need could not be obtained from prefetch or the FHIR server")
        response[0]["prefetch"] = exc.problems
        return response
    logger.info(
        "service %s hookInstance %s: %d card(s) %s, %d unreadable, in %.1f ms",
        service.id, _loggable(hook_request.hook_instance), len(decision.cards), [card.recommendation.id for card in decision.cards],
        len(decision.unreadable), (time.perf_counter() - started) * 1000,
    )
    return decision.response(hook_request.hook_instance)


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
        logger.info("feedback for service %s: card %s %s", service_id, _loggable(item.get("card")), _loggable(item.get("outcome")))
    return {}


_LOGGABLE = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # UUIDs, outcome codes: nothing that can forge a log line


def _loggable(value: object) -> str:
    """A client's identifier as it may appear in a log: only when it is shaped like one."""
    return value if isinstance(value, str) and _LOGGABLE.fullmatch(value) else "(not shown: not an identifier)"


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

