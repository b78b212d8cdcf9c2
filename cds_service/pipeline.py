"""The one pipeline every door calls: a hook request in, the decision out.

    gather (prefetch, then the FHIR server)  ->  read (the knowledge's reader)
    -> select and read the draft orders      ->  apply the recommendations (pure)
    -> leave out cards already shown         ->  Decision: cards, traces, what was unreadable

The HTTP door (api/hooks.py) and the CLI (``cds-service evaluate``) both call ``decide``, so
they cannot disagree. Errors the caller must answer are raised: ``DataUnavailable`` (412).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .budget import WorkBudget
from .fhir.client import FhirClient
from .fhir.gather import gather_resources
from .fhir.patterns import ID
from .fhir.reader import ReadProblem
from .knowledge.cards import to_cds_response
from .knowledge.dedupe import without_repeats
from .knowledge.engine import CardResult, HookContext, RecommendationTrace, apply_service
from .knowledge.model import KnowledgeBase, ServiceDefinition
from .knowledge.record import PatientRecord
from .protocol.drafts import DraftOrders, read_draft_orders
from .protocol.models import HookRequest
from .protocol.validation import check_prefetch_bundles
from .security.fhir_servers import FhirServerList
from .store.shown_cards import ShownCardStore

logger = logging.getLogger(__name__)
ID_PATTERN = re.compile(ID)

# CDS Hooks response extension (reverse-DNS key) listing what could not be read (docs/reading-fhir.md).
UNREADABLE_EXTENSION = "org.example.b12cds.unreadable"
_LOGGED_PROBLEMS_MAX = 20  # per call, in the log line
_LISTED_PROBLEMS_MAX = 1000  # per call, in the response; beyond it one last item gives the count


@dataclass(frozen=True, slots=True)
class Decision:
    cards: list[CardResult]
    traces: list[RecommendationTrace]
    unreadable: tuple[ReadProblem, ...]  # resources and elements that could not be read
    unreadable_orders: tuple[Mapping[str, Any], ...]  # selected drafts that could not be checked

    def response(self, hook_instance: str) -> dict[str, Any]:
        body = to_cds_response(self.cards, hook_instance)
        if self.unreadable:
            listed = [problem.to_json() for problem in self.unreadable[:_LISTED_PROBLEMS_MAX]]
            more = len(self.unreadable) - _LISTED_PROBLEMS_MAX
            if more > 0:
                listed.append({"resourceType": "(more)", "issue": f"{more} more unreadable element(s) or resource(s) not listed"})
            body["extension"] = {UNREADABLE_EXTENSION: listed}
        return body


def decide(
    knowledge: KnowledgeBase,
    service: ServiceDefinition,
    request: HookRequest,
    client: FhirClient,
    now: datetime,
    *,
    allow_http_fhir_server: bool = False,
    shown_cards: ShownCardStore | None = None,
    explain: bool = False,
    fhir_servers: FhirServerList | None = None,
    budget: WorkBudget | None = None,
) -> Decision:
    """Raises RequestValidationError (400), DataUnavailable (412) or WorkBudgetExceeded (422)."""
    deadline = (budget or WorkBudget()).start()
    check_prefetch_bundles(request.prefetch, service.prefetch)  # RequestValidationError: the caller's 400
    resources = gather_resources(request, service.prefetch, client, allow_http_fhir_server, fhir_servers)
    deadline.check_resources(len(resources) + len(request.draft_orders))
    deadline.check()
    record = PatientRecord.read(resources, knowledge.reader, patient_id=request.patient_id)
    deadline.check()
    drafts = read_draft_orders(request, knowledge.reader, record.resolve)
    context = hook_context(request, drafts)
    result = apply_service(knowledge, service, record, context, now, explain=explain)
    deadline.check()
    cards = without_repeats(result.cards, context, shown_cards)
    unreadable = record.problems + drafts.problems + tuple(_unusable(resource) for resource in result.unusable)
    _log_unreadable(service.id, unreadable)
    return Decision(cards, result.traces, unreadable, drafts.unreadable)


def hook_context(request: HookRequest, drafts: DraftOrders) -> HookContext:
    return HookContext(
        hook=request.hook,
        hook_instance=request.hook_instance,
        patient_id=request.patient_id,
        user_id=request.user_id,
        encounter_id=request.encounter_id,
        draft_orders=drafts.drafts,
        selected_orders=drafts.selected,
        unreadable_orders=drafts.unreadable,
    )


_UNUSABLE_ISSUE = "value or unit not usable by the rules (not counted as a result)"


def _unusable(resource: Mapping[str, Any]) -> ReadProblem:
    resource_id = resource.get("id")
    valid_id = resource_id if isinstance(resource_id, str) and ID_PATTERN.fullmatch(resource_id) else None
    return ReadProblem(str(resource.get("resourceType")), valid_id, "value[x]", _UNUSABLE_ISSUE)


def _log_unreadable(service_id: str, problems: tuple[ReadProblem, ...]) -> None:
    if not problems:
        return
    shown = "; ".join(problem.describe() for problem in problems[:_LOGGED_PROBLEMS_MAX])
    more = f" (and {len(problems) - _LOGGED_PROBLEMS_MAX} more)" if len(problems) > _LOGGED_PROBLEMS_MAX else ""
    # Types, validated ids, element paths and fixed issue texts only: no values, no client strings.
    logger.warning("service %s: %d unreadable element(s) or resource(s): %s%s", service_id, len(problems), shown, more)
