"""The loaded, validated and compiled form of the knowledge in ``plan_definitions/``.

These are immutable and built once at start-up by ``loader``; the engine only reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..fhir.reader import ResourceReader
from ..fhirpath import CompiledExpression
from .terminology import ValueSetIndex

SUMMARY_MAX_CHARS = 139  # CDS Hooks: a card summary is "<140 characters"


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled FHIRPath expression and where it was written (for errors and traces)."""

    name: str | None
    compiled: CompiledExpression
    location: str  # "<file>: <element path>"

    @property
    def source(self) -> str:
        return self.compiled.source


@dataclass(frozen=True, slots=True)
class TextPart:
    literal: str | None = None
    expression: Expression | None = None


@dataclass(frozen=True, slots=True)
class Template:
    """Card text with embedded ``{{FHIRPath}}``; a line whose expression is empty is dropped."""

    source: str
    lines: tuple[tuple[TextPart, ...], ...]


@dataclass(frozen=True, slots=True)
class DataRequirement:
    """A named input: resources of one type, optionally filtered by ValueSet membership."""

    id: str
    type: str
    code_path: str | None = None  # "code" or "medication"
    value_set: str | None = None
    location: str = ""


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: str
    value: Any
    documentation: str | None = None


@dataclass(frozen=True, slots=True)
class Coding:
    system: str
    code: str
    display: str | None = None

    def to_json(self) -> dict[str, str]:
        data = {"system": self.system, "code": self.code}
        if self.display:
            data["display"] = self.display
        return data


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True, slots=True)
class ActivityDefinition:
    url: str
    id: str
    kind: str
    resource: Mapping[str, Any]  # the static part of the resource it produces
    location: str


@dataclass(frozen=True, slots=True)
class SuggestionAction:
    type: str  # create | update | delete
    description: Template
    activity: ActivityDefinition | None = None
    resource_ids: Expression | None = None  # for delete: the draft orders to remove


@dataclass(frozen=True, slots=True)
class SuggestionDefinition:
    id: str
    label: Template
    conditions: tuple[Expression, ...]
    actions: tuple[SuggestionAction, ...]
    recommended: bool = False


@dataclass(frozen=True, slots=True)
class CardDefinition:
    """A top-level PlanDefinition action: when its conditions hold it becomes one card."""

    id: str
    hooks: frozenset[str]
    conditions: tuple[Expression, ...]
    summary: Template
    detail: Template
    indicator: str
    source: Link
    selection_behavior: str | None
    suggestions: tuple[SuggestionDefinition, ...]
    override_reasons: tuple[Coding, ...]
    focus: Expression | None = None  # the draft orders the card is about (cross-hook de-duplication)
    show_once_days: int | None = None  # patient-view: not shown again for this long while its content is unchanged


@dataclass(frozen=True, slots=True)
class Library:
    url: str
    id: str
    variables: tuple[Expression, ...]
    inputs: tuple[DataRequirement, ...]
    parameters: tuple[Parameter, ...]
    reported_unusable: tuple[str, ...] = ()  # variables listing resources whose values the rules could not use


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One eca-rule PlanDefinition, identified by its id (the card's source.topic.code)."""

    id: str
    url: str
    title: str
    file: str
    topic_system: str
    variables: tuple[Expression, ...]
    inputs: tuple[DataRequirement, ...]
    libraries: tuple[Library, ...]
    cards: tuple[CardDefinition, ...]
    links: tuple[Link, ...]

    @property
    def hooks(self) -> frozenset[str]:
        return frozenset(hook for card in self.cards for hook in card.hooks)

    def all_inputs(self) -> tuple[DataRequirement, ...]:
        seen: dict[str, DataRequirement] = {}
        for library in self.libraries:
            for requirement in library.inputs:
                seen.setdefault(requirement.id, requirement)
        for requirement in self.inputs:
            seen[requirement.id] = requirement
        return tuple(seen.values())


@dataclass(frozen=True, slots=True)
class ServiceDefinition:
    """A clinical-protocol PlanDefinition: one CDS Hooks service for one hook."""

    id: str
    hook: str
    title: str
    description: str
    file: str
    recommendations: tuple[Recommendation, ...]
    prefetch: Mapping[str, str] = field(default_factory=dict)

    def inputs(self) -> tuple[DataRequirement, ...]:
        seen: dict[tuple[str, str], DataRequirement] = {}
        for recommendation in self.recommendations:
            for requirement in recommendation.all_inputs():
                seen.setdefault((requirement.id, requirement.type), requirement)
        return tuple(seen.values())


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    services: Mapping[str, ServiceDefinition]
    recommendations: Mapping[str, Recommendation]
    terminology: ValueSetIndex
    parameters: Mapping[str, Parameter]
    value_set_aliases: Mapping[str, str]  # "vs-<id>" -> ValueSet url
    source_dir: str
    reader: ResourceReader  # reads the resource types and elements this knowledge uses

    def service_for_hook(self, hook: str) -> ServiceDefinition | None:
        for service in self.services.values():
            if service.hook == hook:
                return service
        return None
