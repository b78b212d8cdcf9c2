"""Apply recommendations to a patient record: the pure core of the service.

Inputs: the knowledge, a PatientRecord, the hook context and the clock. Output: the
cards that apply (as neutral results, mapped to CDS Hooks JSON by ``cards``) and, when
asked, a trace of every condition and named expression. No network, no settings, no
wall clock: the same inputs always give the same result.

Semantics follow PlanDefinition/$apply: a top-level action applies when all its
applicability conditions evaluate to exactly ``true``; an expression that fails counts
as not true and is reported. Named expressions are evaluated lazily, once per request.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..fhirpath import (
    CompiledExpression,
    format_value,
    is_true,
    merge_functions,
    plain_list,
)
from ..fhirpath import data_of as get_data
from .functions import FunctionContext, build_function_table, format_instant
from .model import (
    SUMMARY_MAX_CHARS,
    CardDefinition,
    DataRequirement,
    Expression,
    KnowledgeBase,
    Library,
    Recommendation,
    ServiceDefinition,
    SuggestionDefinition,
    Template,
)
from .templates import render_template

logger = logging.getLogger(__name__)

SEVERITY = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True, slots=True)
class HookContext:
    """What the engine needs from a hook request, already parsed and validated."""

    hook: str
    hook_instance: str
    patient_id: str
    user_id: str | None = None
    encounter_id: str | None = None
    draft_orders: tuple[Mapping[str, Any], ...] = ()  # read (R4-shaped), like the record's resources
    selected_orders: tuple[Mapping[str, Any], ...] = ()
    # Selected drafts whose ordered item (medication, test) is there but cannot be read:
    # {"order": "MedicationRequest/1", "item": "<text as sent, if any>", "reason": "..."}
    unreadable_orders: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ActionResult:
    type: str
    description: str
    resource: Mapping[str, Any] | None = None
    resource_id: str | None = None


@dataclass(frozen=True, slots=True)
class SuggestionResult:
    id: str
    label: str
    recommended: bool
    actions: tuple[ActionResult, ...]


@dataclass(frozen=True, slots=True)
class CardResult:
    recommendation: Recommendation
    definition: CardDefinition
    summary: str
    detail: str
    suggestions: tuple[SuggestionResult, ...]
    focus: tuple[Mapping[str, Any], ...] = ()  # the resources (draft orders) the card is about

    @property
    def indicator(self) -> str:
        return self.definition.indicator


@dataclass
class ExpressionTrace:
    name: str
    source: str
    value: Any = None
    error: str | None = None


@dataclass
class CardTrace:
    card_id: str
    applies_to_hook: bool
    fired: bool = False
    conditions: list[ExpressionTrace] = field(default_factory=list)
    suppressed_by: str | None = None


@dataclass
class RecommendationTrace:
    recommendation_id: str
    cards: list[CardTrace] = field(default_factory=list)
    variables: dict[str, ExpressionTrace] = field(default_factory=dict)


@dataclass
class EngineResult:
    cards: list[CardResult]
    traces: list[RecommendationTrace]
    # Resources whose value the knowledge could not use (e.g. a lab result in an unknown unit).
    unusable: list[Mapping[str, Any]] = field(default_factory=list)


class KnowledgeRuntimeError(RuntimeError):
    """A knowledge defect found while evaluating (e.g. a definition that refers to itself)."""


def apply_service(
    knowledge: KnowledgeBase,
    service: ServiceDefinition,
    record: Any,
    context: HookContext,
    now: datetime,
    explain: bool = False,
) -> EngineResult:
    return apply_recommendations(knowledge, service.recommendations, record, context, now, explain)


def apply_recommendations(
    knowledge: KnowledgeBase,
    recommendations: Sequence[Recommendation],
    record: Any,
    context: HookContext,
    now: datetime,
    explain: bool = False,
) -> EngineResult:
    if now.tzinfo is None:
        raise ValueError("the clock must be timezone-aware")
    evaluation = _Evaluation(knowledge, record, context, now.astimezone(UTC), explain)
    cards: list[CardResult] = []
    traces: list[RecommendationTrace] = []
    for recommendation in recommendations:
        fired, trace = evaluation.recommendation(recommendation)
        cards.extend(fired)
        traces.append(trace)
    cards.sort(key=lambda card: SEVERITY[card.indicator])
    return EngineResult(cards=cards, traces=traces, unusable=evaluation.unusable(recommendations))


class _Scope(Mapping[str, Any]):
    """The ``vars`` fhirpathpy reads: named expressions computed on first use, then kept."""

    def __init__(
        self,
        evaluation: _Evaluation,
        definitions: Sequence[Expression] = (),
        inputs: Sequence[DataRequirement] = (),
        values: Mapping[str, Any] | None = None,
        parents: Sequence[_Scope] = (),
        trace: dict[str, ExpressionTrace] | None = None,
    ) -> None:
        self._evaluation = evaluation
        self._definitions = {d.name: d for d in definitions if d.name}
        self._inputs = {i.id: i for i in inputs}
        self._values: dict[str, Any] = dict(values or {})
        self._parents = tuple(parents)
        self._evaluating: set[str] = set()
        self._trace = trace
        # name -> the scope that defines it; fixed once found (fhirpathpy asks twice per %name read)
        self._owners: dict[str, _Scope | None] = {}

    def _owner(self, name: str) -> _Scope | None:
        if name in self._owners:
            return self._owners[name]
        owner: _Scope | None = None
        if name in self._values or name in self._definitions or name in self._inputs:
            owner = self
        else:
            for parent in self._parents:
                owner = parent._owner(name)
                if owner is not None:
                    break
        self._owners[name] = owner
        return owner

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._owner(name) is not None

    def __getitem__(self, name: str) -> Any:
        owner = self._owner(name)
        if owner is None:
            raise KeyError(name)
        return owner._value(name)

    def _value(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        if name in self._inputs:
            value = self._evaluation.record.input(self._inputs[name], self._evaluation.knowledge.terminology)
        else:
            value = self._compute(self._definitions[name])
        self._values[name] = value
        return value

    def _compute(self, definition: Expression) -> list[Any]:
        name = definition.name or ""
        if name in self._evaluating:
            raise KnowledgeRuntimeError(f"{definition.location}: %{name} refers to itself")
        self._evaluating.add(name)
        try:
            value, error = self._evaluation.evaluate(definition, self)
        finally:
            self._evaluating.discard(name)
        if self._trace is not None:
            self._trace[name] = ExpressionTrace(name, definition.source, plain_list(value), error)
        return value

    def __iter__(self) -> Iterator[str]:
        names = set(self._values) | set(self._definitions) | set(self._inputs)
        for parent in self._parents:
            names |= set(parent)
        return iter(names)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class _Evaluation:
    """One request's evaluation: shared scopes and functions, built once per request."""

    def __init__(self, knowledge: KnowledgeBase, record: Any, context: HookContext, now: datetime, explain: bool) -> None:
        self.knowledge = knowledge
        self.record = record
        self.context = context
        self.now = now
        self.explain = explain
        # Merged with fhirpathpy's built-ins once per request, not on every call (cds_service.fhirpath).
        self.functions = merge_functions(build_function_table(FunctionContext(now, knowledge.terminology, record.resolve)))
        self.root = dict(record.patient) if record.patient is not None else {}
        base_values: dict[str, Any] = {
            "patient": record.patient,
            "draftOrders": list(context.draft_orders),
            "selectedOrders": list(context.selected_orders),
            "unreadableOrders": list(context.unreadable_orders),
            "hook": context.hook,
            "now": format_instant(now),
            "context": self.root,
            "ucum": "http://unitsofmeasure.org",
        }
        base_values.update({name: parameter.value for name, parameter in knowledge.parameters.items()})
        base_values.update(knowledge.value_set_aliases)
        self.base = _Scope(self, values=base_values)
        self._library_scopes: dict[str, _Scope] = {}
        self._library_traces: dict[str, dict[str, ExpressionTrace]] = {}

    def evaluate(self, expression: Expression, scope: _Scope) -> tuple[list[Any], str | None]:
        return self._evaluate(expression.compiled, expression.location, scope)

    def _evaluate(self, compiled: CompiledExpression, location: str, scope: _Scope) -> tuple[list[Any], str | None]:
        try:
            return compiled.evaluate(self.root, scope, self.functions), None
        except KnowledgeRuntimeError:
            raise
        except Exception as exc:  # noqa: BLE001 (fhirpathpy raises plain Exceptions for type errors)
            # The message can quote patient data: log where, not what.
            logger.warning("FHIRPath evaluation failed at %s (%s)", location, type(exc).__name__)
            return [], f"{type(exc).__name__}: {exc}"

    def library_scope(self, library: Library) -> _Scope:
        scope = self._library_scopes.get(library.url)
        if scope is None:
            trace = self._library_traces.setdefault(library.url, {}) if self.explain else None
            scope = _Scope(self, library.variables, library.inputs, parents=[self.base], trace=trace)
            self._library_scopes[library.url] = scope
        return scope

    def unusable(self, recommendations: Sequence[Recommendation]) -> list[Mapping[str, Any]]:
        found: dict[tuple[str, str], Mapping[str, Any]] = {}
        libraries = {library.url: library for recommendation in recommendations for library in recommendation.libraries}
        for library in libraries.values():
            scope = self.library_scope(library)
            for name in library.reported_unusable:
                for item in scope[name]:
                    resource = get_data(item)
                    if isinstance(resource, Mapping):
                        found.setdefault((str(resource.get("resourceType")), str(resource.get("id"))), resource)
        return list(found.values())

    def recommendation_scope(self, recommendation: Recommendation, trace: dict[str, ExpressionTrace] | None = None) -> _Scope:
        """The variables a recommendation's expressions see: its own, its libraries', the base."""
        parents = [self.library_scope(library) for library in recommendation.libraries] or [self.base]
        return _Scope(self, recommendation.variables, recommendation.inputs, parents=parents, trace=trace)

    def recommendation(self, recommendation: Recommendation) -> tuple[list[CardResult], RecommendationTrace]:
        trace = RecommendationTrace(recommendation.id)
        variables: dict[str, ExpressionTrace] | None = {} if self.explain else None
        scope = self.recommendation_scope(recommendation, variables)
        fired: list[CardResult] = []
        for card in recommendation.cards:
            card_trace = CardTrace(card.id, applies_to_hook=self.context.hook in card.hooks)
            trace.cards.append(card_trace)
            if not card_trace.applies_to_hook:
                continue
            if self._conditions_hold(card.conditions, scope, card_trace.conditions):
                card_trace.fired = True
                fired.append(self._card(recommendation, card, scope))
        fired.sort(key=lambda result: SEVERITY[result.indicator])
        # Alert fatigue: one card per recommendation per call, the most urgent one.
        for extra in fired[1:]:
            for card_trace in trace.cards:
                if card_trace.card_id == extra.definition.id:
                    card_trace.suppressed_by = fired[0].definition.id
        if self.explain:
            for library in recommendation.libraries:
                trace.variables.update(self._library_traces.get(library.url, {}))
            trace.variables.update(variables or {})
        return fired[:1], trace

    def _conditions_hold(self, conditions: Sequence[Expression], scope: _Scope, traces: list[ExpressionTrace]) -> bool:
        if not self.explain:
            return all(self._holds(condition, scope) for condition in conditions)
        for index, condition in enumerate(conditions):
            value, error = self.evaluate(condition, scope)
            holds = error is None and is_true(value)
            if self.explain:
                traces.append(ExpressionTrace(f"condition[{index}]", condition.source, plain_list(value), error))
            if not holds:
                if not self.explain:
                    return False
                return self._trace_rest(conditions[index + 1:], scope, traces, index + 1)
        return True

    def _holds(self, condition: Expression, scope: _Scope) -> bool:
        """Whether the condition is exactly true. ``A and B and C`` is true only when each operand
        is, so the operands are evaluated in order and the first that is not true ends it: the
        same answer, without computing what a false operand makes moot (explain computes all)."""
        parts = condition.compiled.conjuncts
        if not parts:
            value, error = self.evaluate(condition, scope)
            return error is None and is_true(value)
        for part in parts:
            value, error = self._evaluate(part, condition.location, scope)
            if error is not None or not is_true(value):
                return False
        return True

    def _trace_rest(self, conditions: Sequence[Expression], scope: _Scope, traces: list[ExpressionTrace], offset: int) -> bool:
        # With --explain, show every condition's value, not only the first false one.
        for index, condition in enumerate(conditions):
            value, error = self.evaluate(condition, scope)
            traces.append(ExpressionTrace(f"condition[{offset + index}]", condition.source, plain_list(value), error))
        return False

    def render(self, template: Template, scope: _Scope) -> str:
        def values(expression: Expression) -> list[str]:
            result, _error = self.evaluate(expression, scope)
            return [format_value(item) for item in result if plain_list([item]) != [None]]

        return render_template(template, values)

    def _card(self, recommendation: Recommendation, card: CardDefinition, scope: _Scope) -> CardResult:
        summary = self.render(card.summary, scope)
        if len(summary) > SUMMARY_MAX_CHARS:
            logger.warning("summary of %s/%s truncated to %d characters", recommendation.id, card.id, SUMMARY_MAX_CHARS)
            summary = summary[: SUMMARY_MAX_CHARS - 1].rstrip() + "…"
        suggestions = []
        for definition in card.suggestions:
            suggestion = self._suggestion(definition, scope)
            if suggestion is not None:
                suggestions.append(suggestion)
        focus: list[Mapping[str, Any]] = []
        if card.focus is not None:
            values, _error = self.evaluate(card.focus, scope)
            # The original resource JSON, not a converted copy (plain() turns floats into Decimals).
            focus = [data for data in (get_data(value) for value in values) if isinstance(data, Mapping)]
        return CardResult(
            recommendation=recommendation,
            definition=card,
            summary=summary,
            detail=self.render(card.detail, scope),
            suggestions=tuple(suggestions),
            focus=tuple(focus),
        )

    def _suggestion(self, definition: SuggestionDefinition, scope: _Scope) -> SuggestionResult | None:
        if not self._conditions_hold(definition.conditions, scope, []):
            return None
        actions: list[ActionResult] = []
        for step in definition.actions:
            description = self.render(step.description, scope)
            if step.type == "delete":
                ids, _error = self.evaluate(step.resource_ids, scope) if step.resource_ids else ([], None)
                actions.extend(
                    ActionResult("delete", description, resource_id=str(value))
                    for value in plain_list(ids)
                    if isinstance(value, str) and "/" in value
                )
            elif step.activity is not None:
                actions.append(ActionResult(step.type, description, resource=self._instantiate(step.activity.resource)))
        if not actions:
            return None  # e.g. a delete whose draft order has no id: nothing to click
        return SuggestionResult(definition.id, self.render(definition.label, scope), definition.recommended, tuple(actions))

    def _instantiate(self, template: Mapping[str, Any]) -> dict[str, Any]:
        """ActivityDefinition/$apply, reduced to what a draft order needs."""
        resource = copy.deepcopy(dict(template))
        resource["subject"] = {"reference": f"Patient/{self.context.patient_id}"}
        if self.context.encounter_id:
            resource["encounter"] = {"reference": f"Encounter/{self.context.encounter_id}"}
        if self.context.user_id and self.context.user_id.split("/")[0] in ("Practitioner", "PractitionerRole"):
            resource["requester"] = {"reference": self.context.user_id}
        resource["authoredOn"] = self.now.isoformat(timespec="seconds").replace("+00:00", "Z")
        return resource
