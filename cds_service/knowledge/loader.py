"""Load, validate and compile every knowledge file in ``plan_definitions/``.

Any problem stops start-up with a ``KnowledgeError`` that names the file, the element
and, for FHIRPath, the expression: a service must never run half of a guideline.

Authoring profile (a subset of HL7 CPG / "FHIR Clinical Reasoning with CDS Hooks"):
- ``PlanDefinition`` type ``clinical-protocol``: one CDS service. Its actions carry the
  ``named-event`` trigger (the hook) and ``definitionCanonical`` to recommendations.
- ``PlanDefinition`` type ``eca-rule``: one recommendation (its id is the card's
  ``source.topic.code``). Each top-level action is a card: triggers, ``applicability``
  conditions in ``text/fhirpath``, title -> summary, description -> detail, priority ->
  indicator, documentation[0] -> source, child actions -> suggestions.
- ``Library`` type ``logic-library``: shared named expressions (``variable`` extension),
  named inputs (``dataRequirement`` with an element id), parameters with defaults
  (``cqf-defaultValue``) that a site can override without code.
- ``ActivityDefinition``: the resources suggestions create. ``ValueSet``: code lists.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class

from ..fhir.definitions import UnknownType
from ..fhir.reader import ResourceReader
from ..fhirpath import BUILTIN_FUNCTION_NAMES, FhirPathSyntaxError, compile_expression
from .functions import CUSTOM_FUNCTION_NAMES
from .functions import ELEMENTS_READ as FUNCTION_ELEMENTS
from .model import (
    SUMMARY_MAX_CHARS,
    ActivityDefinition,
    CardDefinition,
    Coding,
    DataRequirement,
    Expression,
    KnowledgeBase,
    Library,
    Link,
    Parameter,
    Recommendation,
    ServiceDefinition,
    SuggestionAction,
    SuggestionDefinition,
    Template,
)
from .prefetch import derive_prefetch
from .templates import TemplateError, parse_template, static_text, template_expressions
from .terminology import ValueSetError, ValueSetIndex

logger = logging.getLogger(__name__)

VARIABLE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/variable"
DEFAULT_VALUE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/cqf-defaultValue"
# Our authoring profile's own extensions (CDS Hooks card fields PlanDefinition has no element for).
PROFILE_BASE = "http://b12cds.example.org/fhir/StructureDefinition"
OVERRIDE_REASON_EXTENSION = f"{PROFILE_BASE}/cds-override-reason"
RECOMMENDED_EXTENSION = f"{PROFILE_BASE}/cds-suggestion-recommended"
FOCUS_EXTENSION = f"{PROFILE_BASE}/cds-card-focus"
# On a card: on patient-view it is shown once, then not again for this many days while its
# suggestions (what it asks for) are unchanged: alert fatigue for advice that does not change.
SHOW_ONCE_EXTENSION = f"{PROFILE_BASE}/cds-show-once-days"
# On a Library: names a variable whose resources hold a value the rules could not use (a lab
# result in an unknown unit); they are reported like unreadable data, never silently dropped.
REPORTED_UNUSABLE_EXTENSION = f"{PROFILE_BASE}/reported-unusable"

FHIRPATH = "text/fhirpath"
PRIORITY_TO_INDICATOR = {"routine": "info", "urgent": "warning", "stat": "critical"}
SELECTION_BEHAVIORS = frozenset({"any", "at-most-one"})
SUGGESTION_ACTION_TYPES = frozenset({"create", "update", "delete"})
SUPPORTED_INPUT_TYPES = frozenset(
    {"Patient", "Observation", "Condition", "MedicationRequest", "MedicationAdministration",
     "MedicationStatement", "Procedure", "ServiceRequest", "Encounter", "AllergyIntolerance"}
)
# Variables every expression may use; bound by the engine for each request.
BUILTIN_VARIABLES = frozenset({"patient", "draftOrders", "selectedOrders", "unreadableOrders", "hook", "now", "context", "ucum"})



class KnowledgeError(Exception):
    """The knowledge cannot be used; the message says which file and element."""


@dataclass(frozen=True, slots=True)
class _File:
    path: Path
    name: str  # relative to the knowledge directory, for messages
    resource: dict[str, Any]


def load_knowledge(directory: str | Path, parameter_overrides: str | Path | None = None) -> KnowledgeBase:
    root = Path(directory)
    if not root.is_dir():
        raise KnowledgeError(f"knowledge directory {root} does not exist")
    files = [_read(path, root) for path in sorted(root.rglob("*.json"))]
    if not files:
        raise KnowledgeError(f"knowledge directory {root} holds no .json files")
    by_type: dict[str, list[_File]] = {}
    for file in files:
        _validate_fhir(file)
        by_type.setdefault(file.resource["resourceType"], []).append(file)
    unsupported = set(by_type) - {"PlanDefinition", "Library", "ActivityDefinition", "ValueSet", "CodeSystem", "Parameters"}
    if unsupported:
        names = ", ".join(f.name for t in sorted(unsupported) for f in by_type[t])
        raise KnowledgeError(f"unsupported knowledge resource type(s) {sorted(unsupported)} in {names}")

    try:
        terminology = ValueSetIndex.from_resources(f.resource for f in by_type.get("ValueSet", []))
    except ValueSetError as exc:
        raise KnowledgeError(f"ValueSets: {exc}") from None
    aliases = {f"vs-{f.resource['id']}": f.resource["url"] for f in by_type.get("ValueSet", [])}
    activities = {a.url: a for a in (_activity(f) for f in by_type.get("ActivityDefinition", []))}
    libraries = {lib.url: lib for lib in (_library(f, terminology) for f in by_type.get("Library", []))}
    parameters = _parameters(libraries.values(), by_type.get("Parameters", []), parameter_overrides)

    recommendations: dict[str, Recommendation] = {}
    protocols: list[_File] = []
    for file in by_type.get("PlanDefinition", []):
        kind = _plan_type(file)
        if kind == "eca-rule":
            recommendation = _recommendation(file, libraries, activities, terminology)
            if recommendation.id in recommendations:
                raise KnowledgeError(f"{file.name}: duplicate recommendation id {recommendation.id!r}")
            recommendations[recommendation.id] = recommendation
        elif kind == "clinical-protocol":
            protocols.append(file)
        else:
            raise KnowledgeError(f"{file.name}: PlanDefinition.type must be eca-rule or clinical-protocol, not {kind!r}")

    by_url = {r.url: r for r in recommendations.values()}
    services: dict[str, ServiceDefinition] = {}
    for file in protocols:
        service = _service(file, by_url, terminology)
        if service.id in services:
            raise KnowledgeError(f"{file.name}: duplicate service id {service.id!r}")
        services[service.id] = service
    if not services:
        raise KnowledgeError(f"{root}: no clinical-protocol PlanDefinition, so no CDS service to offer")

    for recommendation in recommendations.values():
        _check_references(recommendation, parameters, aliases)
    reader = _resource_reader(recommendations.values())
    logger.info(
        "knowledge loaded: %d services, %d recommendations, %d value sets, %d parameters",
        len(services), len(recommendations), len(terminology.urls()), len(parameters),
    )
    return KnowledgeBase(
        services=services,
        recommendations=recommendations,
        terminology=terminology,
        parameters=parameters,
        value_set_aliases=aliases,
        source_dir=str(root),
        reader=reader,
    )


def _resource_reader(recommendations: Iterable[Recommendation]) -> ResourceReader:
    """A reader for exactly what this knowledge reads: its input types, and the element
    names its expressions navigate plus those the custom functions read."""
    names: set[str] = set(FUNCTION_ELEMENTS)
    types: set[str] = {"Patient"}
    for recommendation in recommendations:
        types.update(requirement.type for requirement in recommendation.all_inputs())
        names.update(requirement.code_path or "code" for requirement in recommendation.all_inputs())
        for expression in all_expressions(recommendation):
            names.update(expression.compiled.member_names())
    try:
        return ResourceReader(types, names)
    except UnknownType as exc:
        raise KnowledgeError(f"data requirements name resource types that FHIR R4 does not have: {exc}") from None


# --- files -------------------------------------------------------------------------------

def _read(path: Path, root: Path) -> _File:
    name = str(path.relative_to(root.parent)) if root.parent != path else path.name
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise KnowledgeError(f"{name}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise KnowledgeError(f"{name}: not a FHIR resource (no resourceType)")
    return _File(path=path, name=name, resource=data)


def _validate_fhir(file: _File) -> None:
    resource_type = file.resource["resourceType"]
    try:
        model = get_fhir_model_class(resource_type)
    except KeyError:
        raise KnowledgeError(f"{file.name}: unknown FHIR resource type {resource_type!r}") from None
    try:
        model.model_validate(file.resource)
    except Exception as exc:  # noqa: BLE001 (pydantic ValidationError, or fhir-core's KeyError for odd types)
        raise KnowledgeError(f"{file.name}: not a valid FHIR R4 {resource_type}: {_first_error(exc)}") from None


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        location = ".".join(str(part) for part in first.get("loc", ()))
        return f"{location}: {first.get('msg')}"
    return str(exc)


# --- expressions -------------------------------------------------------------------------

def _compile(source: Any, location: str, name: str | None = None) -> Expression:
    if not isinstance(source, str):
        raise KnowledgeError(f"{location}: expression must be a string")
    try:
        compiled = compile_expression(source)
    except FhirPathSyntaxError as exc:
        raise KnowledgeError(f"{location}: {exc}") from None
    return Expression(name=name, compiled=compiled, location=location)


def _expression_element(element: Any, location: str, name: str | None = None) -> Expression:
    if not isinstance(element, Mapping):
        raise KnowledgeError(f"{location}: missing Expression")
    if element.get("language") != FHIRPATH:
        raise KnowledgeError(f"{location}: Expression.language must be {FHIRPATH!r}, not {element.get('language')!r}")
    return _compile(element.get("expression"), location, name)


def _template(text: Any, location: str) -> Template:
    if not isinstance(text, str):
        raise KnowledgeError(f"{location}: text is required")
    try:
        return parse_template(text, location)
    except TemplateError as exc:
        raise KnowledgeError(str(exc)) from None


def _variables(resource: Mapping[str, Any], file: str, where: str) -> tuple[Expression, ...]:
    variables = []
    names: set[str] = set()
    for index, extension in enumerate(resource.get("extension") or []):
        if extension.get("url") != VARIABLE_EXTENSION:
            continue
        location = f"{file}: {where}.extension[{index}]"
        value = extension.get("valueExpression") or {}
        name = value.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise KnowledgeError(f"{location}: variable needs a name made of letters, digits and _")
        if name in names:
            raise KnowledgeError(f"{location}: variable {name!r} defined twice")
        names.add(name)
        variables.append(_expression_element(value, f"{location} ({name})", name))
    return tuple(variables)


# --- resources ---------------------------------------------------------------------------

def _activity(file: _File) -> ActivityDefinition:
    resource = file.resource
    kind = resource.get("kind")
    _require_url(file)
    template: dict[str, Any]
    if kind == "MedicationRequest":
        if "productCodeableConcept" not in resource:
            raise KnowledgeError(f"{file.name}: a MedicationRequest ActivityDefinition needs productCodeableConcept")
        template = {
            "resourceType": "MedicationRequest",
            "status": "draft",
            "intent": resource.get("intent", "order"),
            "medicationCodeableConcept": resource["productCodeableConcept"],
        }
        if resource.get("dosage"):
            template["dosageInstruction"] = resource["dosage"]
    elif kind == "ServiceRequest":
        if "code" not in resource:
            raise KnowledgeError(f"{file.name}: a ServiceRequest ActivityDefinition needs code")
        template = {
            "resourceType": "ServiceRequest",
            "status": "draft",
            "intent": resource.get("intent", "order"),
            "code": resource["code"],
        }
    else:
        raise KnowledgeError(f"{file.name}: ActivityDefinition.kind {kind!r} is not supported (MedicationRequest, ServiceRequest)")
    # The created resource must itself be valid FHIR, or the EHR will reject the suggestion.
    probe = {**template, "subject": {"reference": "Patient/example"}}
    try:
        get_fhir_model_class(kind).model_validate(probe)
    except Exception as exc:  # noqa: BLE001 (any failure: the file is not valid FHIR)
        raise KnowledgeError(f"{file.name}: the {kind} it creates is not valid FHIR: {_first_error(exc)}") from None
    return ActivityDefinition(url=resource["url"], id=resource["id"], kind=kind, resource=template, location=file.name)


def _library(file: _File, terminology: ValueSetIndex) -> Library:
    resource = file.resource
    _require_url(file)
    inputs = tuple(
        _data_requirement(requirement, f"{file.name}: dataRequirement[{i}]", terminology)
        for i, requirement in enumerate(resource.get("dataRequirement") or [])
    )
    parameters = tuple(_parameter(p, f"{file.name}: parameter[{i}]") for i, p in enumerate(resource.get("parameter") or []))
    variables = _variables(resource, file.name, "Library")
    _no_duplicates([*(v.name for v in variables), *(i.id for i in inputs), *(p.name for p in parameters)], file.name)
    reported = tuple(
        str(extension.get("valueString"))
        for extension in resource.get("extension") or []
        if extension.get("url") == REPORTED_UNUSABLE_EXTENSION
    )
    unknown = sorted(set(reported) - {v.name for v in variables})
    if unknown:
        raise KnowledgeError(f"{file.name}: reported-unusable names no variable of this Library: {', '.join(unknown)}")
    return Library(
        url=resource["url"], id=resource["id"], variables=variables, inputs=inputs, parameters=parameters, reported_unusable=reported
    )


def _data_requirement(element: Mapping[str, Any], location: str, terminology: ValueSetIndex) -> DataRequirement:
    requirement_id = element.get("id")
    if not isinstance(requirement_id, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", requirement_id):
        raise KnowledgeError(f"{location}: a data requirement needs an id usable as %variable")
    resource_type = element.get("type")
    if resource_type not in SUPPORTED_INPUT_TYPES:
        raise KnowledgeError(f"{location}: unsupported data requirement type {resource_type!r}")
    filters = element.get("codeFilter") or []
    if len(filters) > 1:
        raise KnowledgeError(f"{location}: at most one codeFilter is supported")
    code_path = value_set = None
    if filters:
        code_path, value_set = filters[0].get("path"), filters[0].get("valueSet")
        if code_path not in ("code", "medication"):
            raise KnowledgeError(f"{location}: codeFilter.path must be 'code' or 'medication'")
        if value_set not in terminology:
            raise KnowledgeError(f"{location}: codeFilter.valueSet {value_set!r} is not a loaded ValueSet")
    return DataRequirement(id=requirement_id, type=resource_type, code_path=code_path, value_set=value_set, location=location)


_PARAMETER_TYPES = {"integer": "valueInteger", "decimal": "valueDecimal", "string": "valueString", "boolean": "valueBoolean"}


def _parameter(element: Mapping[str, Any], location: str) -> Parameter:
    name, kind = element.get("name"), element.get("type")
    if not isinstance(name, str) or not name:
        raise KnowledgeError(f"{location}: parameter needs a name")
    if kind not in _PARAMETER_TYPES:
        raise KnowledgeError(f"{location}: parameter type must be one of {sorted(_PARAMETER_TYPES)}")
    defaults = [e for e in element.get("extension") or [] if e.get("url") == DEFAULT_VALUE_EXTENSION]
    if len(defaults) != 1 or _PARAMETER_TYPES[kind] not in defaults[0]:
        raise KnowledgeError(f"{location} ({name}): needs one cqf-defaultValue extension with {_PARAMETER_TYPES[kind]}")
    return Parameter(
        name=name,
        type=kind,
        value=_typed(defaults[0][_PARAMETER_TYPES[kind]], kind),
        documentation=element.get("documentation"),
    )


def _typed(value: Any, kind: str) -> Any:
    # Decimals stay exact so that 0.738 is not 0.73799999.
    return Decimal(str(value)) if kind == "decimal" else value


def _parameters(
    libraries: Iterable[Library], parameter_files: list[_File], overrides: str | Path | None
) -> dict[str, Parameter]:
    parameters: dict[str, Parameter] = {}
    for library in libraries:
        for parameter in library.parameters:
            if parameter.name in parameters:
                raise KnowledgeError(f"Library {library.url}: parameter {parameter.name!r} is declared twice")
            parameters[parameter.name] = parameter
    override_files = list(parameter_files)
    if overrides:
        path = Path(overrides)
        if not path.is_file():
            raise KnowledgeError(f"parameter overrides file {path} does not exist")
        override_files.append(_read(path, path.parent))
    for file in override_files:
        for index, item in enumerate(file.resource.get("parameter") or []):
            name = item.get("name")
            location = f"{file.name}: parameter[{index}] ({name})"
            if name not in parameters:
                raise KnowledgeError(f"{location}: no knowledge parameter of that name")
            declared = parameters[name]
            field_name = _PARAMETER_TYPES[declared.type]
            if field_name not in item:
                raise KnowledgeError(f"{location}: expected {field_name} for a {declared.type} parameter")
            parameters[name] = Parameter(name, declared.type, _typed(item[field_name], declared.type), declared.documentation)
            logger.info("knowledge parameter %s overridden by %s", name, file.name)
    return parameters


def _plan_type(file: _File) -> str | None:
    codings = ((file.resource.get("type") or {}).get("coding")) or []
    return codings[0].get("code") if codings else None


def _require_url(file: _File) -> None:
    resource = file.resource
    expected_suffix = f"/{resource['resourceType']}/{resource.get('id')}"
    if not resource.get("id") or not str(resource.get("url", "")).endswith(expected_suffix):
        raise KnowledgeError(f"{file.name}: url must end with {expected_suffix!r} (got {resource.get('url')!r})")


def _recommendation(
    file: _File,
    libraries: Mapping[str, Library],
    activities: Mapping[str, ActivityDefinition],
    terminology: ValueSetIndex,
) -> Recommendation:
    resource = file.resource
    _require_url(file)
    used_libraries = []
    for canonical in resource.get("library") or []:
        if canonical not in libraries:
            raise KnowledgeError(f"{file.name}: library {canonical!r} is not loaded")
        used_libraries.append(libraries[canonical])
    actions = resource.get("action") or []
    if not actions:
        raise KnowledgeError(f"{file.name}: a recommendation needs at least one action")
    inputs = tuple(
        _data_requirement(requirement, f"{file.name}: action[{a}].input[{i}]", terminology)
        for a, action in enumerate(actions)
        for i, requirement in enumerate(action.get("input") or [])
    )
    cards = tuple(_card(action, f"{file.name}: action[{i}]", activities) for i, action in enumerate(actions))
    _no_duplicates([card.id for card in cards], f"{file.name} (action ids)")
    links = tuple(
        Link(label=artifact.get("display") or artifact.get("label") or artifact.get("citation") or artifact["url"], url=artifact["url"])
        for artifact in resource.get("relatedArtifact") or []
        if artifact.get("url")
    )
    url = resource["url"]
    return Recommendation(
        id=resource["id"],
        url=url,
        title=resource.get("title") or resource["id"],
        file=file.name,
        topic_system=url[: url.rindex("/PlanDefinition/")],
        variables=_variables(resource, file.name, "PlanDefinition"),
        inputs=inputs,
        libraries=tuple(used_libraries),
        cards=cards,
        links=links,
    )


def _card(action: Mapping[str, Any], location: str, activities: Mapping[str, ActivityDefinition]) -> CardDefinition:
    action_id = action.get("id")
    if not action_id:
        raise KnowledgeError(f"{location}: action.id is required (it names the card)")
    hooks = frozenset(
        trigger.get("name") for trigger in action.get("trigger") or [] if trigger.get("type") == "named-event"
    )
    if not hooks or None in hooks:
        raise KnowledgeError(f"{location}: needs at least one named-event trigger naming a hook")
    priority = action.get("priority")
    if priority not in PRIORITY_TO_INDICATOR:
        raise KnowledgeError(f"{location}: priority must be one of {sorted(PRIORITY_TO_INDICATOR)} (-> card indicator)")
    summary = _template(action.get("title"), f"{location}.title")
    if len(static_text(summary)) > SUMMARY_MAX_CHARS:
        raise KnowledgeError(f"{location}.title: the summary is longer than {SUMMARY_MAX_CHARS} characters")
    documentation = (action.get("documentation") or [None])[0]
    if not documentation or not documentation.get("display"):
        raise KnowledgeError(f"{location}: documentation[0] with a display is required (card source)")
    suggestions = tuple(
        _suggestion(child, f"{location}.action[{i}]", activities) for i, child in enumerate(action.get("action") or [])
    )
    selection = action.get("selectionBehavior")
    if suggestions and selection not in SELECTION_BEHAVIORS:
        raise KnowledgeError(f"{location}: selectionBehavior must be 'any' or 'at-most-one' when there are suggestions")
    reasons = tuple(_override_reason(e, location) for e in action.get("extension") or [] if e.get("url") == OVERRIDE_REASON_EXTENSION)
    focus_extensions = [e for e in action.get("extension") or [] if e.get("url") == FOCUS_EXTENSION]
    if len(focus_extensions) > 1:
        raise KnowledgeError(f"{location}: at most one {FOCUS_EXTENSION} extension")
    focus = _expression_element(focus_extensions[0].get("valueExpression"), f"{location} (card focus)") if focus_extensions else None
    show_once = [e.get("valueInteger") for e in action.get("extension") or [] if e.get("url") == SHOW_ONCE_EXTENSION]
    if len(show_once) > 1 or any(type(days) is not int or days < 1 for days in show_once):
        raise KnowledgeError(f"{location}: at most one {SHOW_ONCE_EXTENSION} extension, with a positive valueInteger (days)")
    indicator = PRIORITY_TO_INDICATOR[priority]
    if show_once and indicator == "critical":
        raise KnowledgeError(f"{location}: a critical card is shown every time ({SHOW_ONCE_EXTENSION} not allowed)")
    if indicator in ("warning", "critical") and not reasons:
        raise KnowledgeError(f"{location}: a {indicator} card needs override reasons ({OVERRIDE_REASON_EXTENSION})")
    return CardDefinition(
        id=action_id,
        hooks=hooks,
        conditions=_conditions(action, location),
        summary=summary,
        detail=_template(action.get("description", ""), f"{location}.description"),
        indicator=indicator,
        source=Link(label=documentation["display"], url=documentation.get("url", "")),
        selection_behavior=selection if suggestions else None,
        suggestions=suggestions,
        override_reasons=reasons,
        focus=focus,
        show_once_days=show_once[0] if show_once else None,
    )


def _conditions(action: Mapping[str, Any], location: str) -> tuple[Expression, ...]:
    conditions = []
    for index, condition in enumerate(action.get("condition") or []):
        if condition.get("kind") != "applicability":
            raise KnowledgeError(f"{location}.condition[{index}]: only kind 'applicability' is supported")
        conditions.append(_expression_element(condition.get("expression"), f"{location}.condition[{index}]"))
    return tuple(conditions)


def _override_reason(extension: Mapping[str, Any], location: str) -> Coding:
    coding = extension.get("valueCoding") or {}
    if not (coding.get("system") and coding.get("code") and coding.get("display")):
        raise KnowledgeError(f"{location}: an override reason needs system, code and display")
    return Coding(system=coding["system"], code=coding["code"], display=coding["display"])


def _suggestion(
    action: Mapping[str, Any], location: str, activities: Mapping[str, ActivityDefinition]
) -> SuggestionDefinition:
    if not action.get("id") or not action.get("title"):
        raise KnowledgeError(f"{location}: a suggestion needs an id and a title (its label)")
    steps = []
    for index, child in enumerate(action.get("action") or []):
        where = f"{location}.action[{index}]"
        kind = ((child.get("type") or {}).get("coding") or [{}])[0].get("code")
        if kind not in SUGGESTION_ACTION_TYPES:
            raise KnowledgeError(f"{where}: type must be create, update or delete")
        activity = None
        if kind in ("create", "update"):
            canonical = child.get("definitionCanonical")
            if canonical not in activities:
                raise KnowledgeError(f"{where}: definitionCanonical {canonical!r} is not a loaded ActivityDefinition")
            activity = activities[canonical]
        resource_ids = None
        if kind == "delete":
            values = [d for d in child.get("dynamicValue") or [] if d.get("path") == "resourceId"]
            if len(values) != 1:
                raise KnowledgeError(f"{where}: a delete needs one dynamicValue with path 'resourceId'")
            resource_ids = _expression_element(values[0].get("expression"), f"{where}.dynamicValue")
        description = _template(child.get("description") or child.get("title"), f"{where}.description")
        steps.append(SuggestionAction(type=kind, description=description, activity=activity, resource_ids=resource_ids))
    if not steps:
        raise KnowledgeError(f"{location}: a suggestion needs at least one action")
    recommended = any(
        e.get("url") == RECOMMENDED_EXTENSION and e.get("valueBoolean") for e in action.get("extension") or []
    )
    return SuggestionDefinition(
        id=action["id"],
        label=_template(action["title"], f"{location}.title"),
        conditions=_conditions(action, location),
        actions=tuple(steps),
        recommended=recommended,
    )


def _service(file: _File, recommendations: Mapping[str, Recommendation], terminology: ValueSetIndex) -> ServiceDefinition:
    resource = file.resource
    hooks: set[str] = set()
    members = []
    for index, action in enumerate(resource.get("action") or []):
        location = f"{file.name}: action[{index}]"
        hooks.update(t.get("name") for t in action.get("trigger") or [] if t.get("type") == "named-event")
        canonical = action.get("definitionCanonical")
        if canonical not in recommendations:
            raise KnowledgeError(f"{location}: definitionCanonical {canonical!r} is not a loaded recommendation")
        members.append(recommendations[canonical])
    if len(hooks) != 1 or None in hooks:
        raise KnowledgeError(f"{file.name}: a service PlanDefinition needs exactly one hook across its triggers, got {sorted(map(str, hooks))}")
    hook = hooks.pop()
    for member in members:
        if hook not in member.hooks:
            raise KnowledgeError(f"{file.name}: recommendation {member.id!r} has no card for hook {hook!r}")
    if not resource.get("description"):
        raise KnowledgeError(f"{file.name}: description is required (CDS Hooks discovery)")
    service = ServiceDefinition(
        id=resource["id"],
        hook=hook,
        title=resource.get("title") or resource["id"],
        description=resource["description"],
        file=file.name,
        recommendations=tuple(members),
    )
    return ServiceDefinition(**{**_fields(service), "prefetch": derive_prefetch(service.inputs(), terminology)})


def _fields(service: ServiceDefinition) -> dict[str, Any]:
    return {name: getattr(service, name) for name in service.__dataclass_fields__}


def _no_duplicates(names: Iterable[str | None], where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise KnowledgeError(f"{where}: name {name!r} is defined twice")
        if name is not None:
            seen.add(name)


# --- static checks -----------------------------------------------------------------------

def _check_references(recommendation: Recommendation, parameters: Mapping[str, Parameter], aliases: Mapping[str, str]) -> None:
    """Every %variable and function an expression uses must exist: a typo fails at load."""
    library_names = {
        name
        for library in recommendation.libraries
        for name in [*(v.name for v in library.variables), *(i.id for i in library.inputs)]
        if name is not None
    }
    local_names = {v.name for v in recommendation.variables if v.name is not None} | {i.id for i in recommendation.inputs}
    clash = local_names & (library_names | set(parameters))
    if clash:
        raise KnowledgeError(f"{recommendation.file}: names {sorted(clash)} shadow library definitions or parameters")
    known = BUILTIN_VARIABLES | set(parameters) | set(aliases) | library_names | local_names
    functions = BUILTIN_FUNCTION_NAMES | CUSTOM_FUNCTION_NAMES
    for expression in all_expressions(recommendation):
        # From the parse tree: names inside string literals or comments are not references.
        for name in expression.compiled.variable_names():
            if name not in known:
                raise KnowledgeError(f"{expression.location}: unknown variable %{name} in {expression.source!r}")
        for name in expression.compiled.function_names():
            if name not in functions:
                raise KnowledgeError(f"{expression.location}: unknown function {name}() in {expression.source!r}")


def all_expressions(recommendation: Recommendation) -> list[Expression]:
    """Every expression of a recommendation and its libraries: variables, conditions, templates,
    card focus, dynamicValues."""
    expressions = [v for library in recommendation.libraries for v in library.variables]
    expressions += list(recommendation.variables)
    for card in recommendation.cards:
        expressions += list(card.conditions)
        expressions += template_expressions(card.summary) + template_expressions(card.detail)
        if card.focus is not None:
            expressions.append(card.focus)
        for suggestion in card.suggestions:
            expressions += list(suggestion.conditions) + template_expressions(suggestion.label)
            for step in suggestion.actions:
                expressions += template_expressions(step.description)
                if step.resource_ids is not None:
                    expressions.append(step.resource_ids)
    return expressions
