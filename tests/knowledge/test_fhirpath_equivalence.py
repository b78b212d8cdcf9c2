"""The compiled FHIRPath gives what plain, unpatched fhirpathpy gives.

For every fixture (the scenarios, the clinical review, the Synthea charts) and EVERY expression of
the loaded knowledge (library and recommendation variables, card and suggestion conditions,
template expressions, card focus, dynamicValues), of every recommendation whatever the hook:

- the fast side is the production path: the engine's lazy scopes and per-request function table,
  ``CompiledExpression.evaluate``;
- the plain side is ``fhirpathpy.compile(source, models["r4"], options)`` with the custom
  functions passed the documented way (``options["userInvocationTable"]``), and variables
  computed by plain fhirpathpy too, in dependency order (a variable that fails is empty, as in
  the engine);

and each expression's items (``plain_list``), or its error (type and message), must be equal.
The two sides share only the record's data requirements (the resources read for an input,
not FHIRPath) and the custom functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import fhirpathpy
import pytest
from fhirpathpy.models import models

from cds_service.fhir.client import FhirClient
from cds_service.fhir.gather import gather_resources
from cds_service.fhirpath import (
    FunctionSpec,
    compile_expression,
    merge_functions,
    plain_list,
    user_invocation_table,
)
from cds_service.knowledge.engine import _Evaluation
from cds_service.knowledge.functions import FunctionContext, build_function_table
from cds_service.knowledge.loader import all_expressions
from cds_service.knowledge.model import DataRequirement, Expression, KnowledgeBase
from cds_service.knowledge.record import PatientRecord
from cds_service.pipeline import hook_context
from cds_service.protocol.drafts import read_draft_orders
from cds_service.protocol.models import HookRequest

from ..support.scenarios import load_scenarios
from ..support.synthea import bundle_files, load, patient_view_request
from ..test_clinical_review import PATIENTS, hook_request

# (name, a maker of (request body, clock) given the knowledge)
Fixture = tuple[str, Callable[[KnowledgeBase], tuple[dict[str, Any], datetime]]]


def _fixtures() -> list[Fixture]:
    found: list[Fixture] = []
    for scenario in load_scenarios():
        found.append((f"scenario:{scenario.name}", lambda _k, s=scenario: (s.request, s.now)))
    for path in PATIENTS:
        def review(_k: KnowledgeBase, path: Path = path) -> tuple[dict[str, Any], datetime]:
            data = json.loads(path.read_text(encoding="utf-8"))
            return hook_request(data, path.name), datetime.fromisoformat(data["now"].replace("Z", "+00:00"))
        found.append((f"review:{path.parent.name}/{path.stem}", review))
    for path in bundle_files():
        def synthea(k: KnowledgeBase, path: Path = path) -> tuple[dict[str, Any], datetime]:
            return patient_view_request(load(path), dict(k.service_for_hook("patient-view").prefetch))
        found.append((f"synthea:{path.stem[:40]}", synthea))
    return found


FIXTURES = _fixtures()


# --------------------------------------------------------------------------- the plain side

class _PlainFhirpathpy:
    """Plain fhirpathpy: ``compile`` once per expression, the custom functions in its documented
    ``userInvocationTable`` option (the dict is refilled per fixture: fhirpathpy reads it at
    each evaluation)."""

    def __init__(self) -> None:
        self.table: dict[str, Any] = {}
        self.options = {"userInvocationTable": self.table, "returnRawData": True}
        self.compiled: dict[str, Callable[..., list[Any]]] = {}

    def use(self, functions: Mapping[str, FunctionSpec]) -> None:
        self.table.clear()
        self.table.update(user_invocation_table(functions))

    def evaluate(self, source: str, root: Any, variables: dict[str, Any]) -> list[Any]:
        if source not in self.compiled:
            self.compiled[source] = fhirpathpy.compile(source, models["r4"], self.options)
        return self.compiled[source](root, variables)


PLAIN = _PlainFhirpathpy()


def _outcome(run: Callable[[], list[Any]]) -> tuple[Any, ...]:
    try:
        return ("value", plain_list(run()))
    except Exception as exc:  # noqa: BLE001 (an expression's failure is part of its result)
        return ("error", type(exc).__name__, str(exc))


class _PlainScope:
    """The engine's scopes again, with every variable computed by plain fhirpathpy, once,
    after those it reads (found in the parse tree)."""

    def __init__(self, root: Any, values: Mapping[str, Any], definitions: tuple[Expression, ...],
                 inputs: Mapping[str, list[Any]], parents: tuple[_PlainScope, ...] = ()) -> None:
        self.root = root
        self.values = {**values, **inputs}
        self.definitions = {d.name: d for d in definitions if d.name}
        self.parents = parents

    def has(self, name: str) -> bool:
        return name in self.values or name in self.definitions or any(p.has(name) for p in self.parents)

    def value(self, name: str) -> Any:
        if name not in self.values:
            if name in self.definitions:
                definition = self.definitions[name]
                try:
                    self.values[name] = PLAIN.evaluate(definition.source, self.root, self.environment(definition))
                except Exception:  # noqa: BLE001 (as in the engine: a failing definition is empty)
                    self.values[name] = []
            else:
                return next(p for p in self.parents if p.has(name)).value(name)
        return self.values[name]

    def environment(self, expression: Expression) -> dict[str, Any]:
        return {name: self.value(name) for name in expression.compiled.variable_names() if self.has(name)}


# --------------------------------------------------------------------------- the comparison

def _read(knowledge: KnowledgeBase, body: dict[str, Any], now: datetime) -> _Evaluation:
    # The reading half of pipeline.decide (prefetch only: the fixtures carry their data).
    request = HookRequest.from_json(body)
    service = knowledge.service_for_hook(request.hook)
    resources = gather_resources(request, service.prefetch, FhirClient(), False, None)
    record = PatientRecord.read(resources, knowledge.reader, patient_id=request.patient_id)
    drafts = read_draft_orders(request, knowledge.reader, record.resolve)
    return _Evaluation(knowledge, record, hook_context(request, drafts), now, explain=False)


@pytest.mark.parametrize("fixture", FIXTURES, ids=[name for name, _ in FIXTURES])
def test_every_expression_matches_plain_fhirpathpy(fixture: Fixture, knowledge: KnowledgeBase) -> None:
    _name, make = fixture
    body, now = make(knowledge)
    evaluation = _read(knowledge, body, now)
    record, root = evaluation.record, evaluation.root
    PLAIN.use(build_function_table(FunctionContext(evaluation.now, knowledge.terminology, record.resolve)))
    base = _PlainScope(root, dict(evaluation.base), (), {})

    def inputs(requirements: tuple[DataRequirement, ...]) -> dict[str, list[Any]]:
        return {r.id: record.input(r, knowledge.terminology) for r in requirements}

    libraries = {
        library.url: _PlainScope(root, {}, library.variables, inputs(library.inputs), (base,))
        for recommendation in knowledge.recommendations.values() for library in recommendation.libraries
    }
    compared: set[int] = set()
    for recommendation in knowledge.recommendations.values():
        owner = {id(v): library for library in recommendation.libraries for v in library.variables}
        parents = tuple(libraries[library.url] for library in recommendation.libraries) or (base,)
        plain_scope = _PlainScope(root, {}, recommendation.variables, inputs(recommendation.inputs), parents)
        fast_scope = evaluation.recommendation_scope(recommendation)
        for expression in all_expressions(recommendation):
            if id(expression) in compared:
                continue  # a library's variable, already compared for another recommendation
            compared.add(id(expression))
            library = owner.get(id(expression))
            fast_env = evaluation.library_scope(library) if library is not None else fast_scope
            plain_env = libraries[library.url] if library is not None else plain_scope
            fast = _outcome(lambda e=expression, s=fast_env: e.compiled.evaluate(root, s, evaluation.functions))
            plain = _outcome(lambda e=expression, s=plain_env: PLAIN.evaluate(e.source, root, s.environment(e)))
            assert fast == plain, f"{expression.location}: {expression.source!r}"
    every = {id(e) for r in knowledge.recommendations.values() for e in all_expressions(r)}
    assert every and compared == every


def test_the_comparison_covers_every_kind_of_fixture() -> None:
    kinds = {name.split(":")[0] for name, _ in FIXTURES}
    assert kinds == {"scenario", "review", "synthea"}


# --------------------------------------------------------------------------- beyond the knowledge

@pytest.mark.parametrize("expression, variables", [
    ("%a.where($this > 1).select($this * 2)", {"a": [1, 2, 3]}),
    ("%a.where($index = 1)", {"a": ["x", "y"]}),
    ("%a.exists($this = 'y') and %a.all($this.length() = 1)", {"a": ["x", "y"]}),
    ("coalesce(%missing, %a.first())", {"a": ["x"], "missing": None}),
    ("%a.take(2).skip(1) | %a.last()", {"a": [1, 2, 3]}),
    ("%a[1]", {"a": [1, 2, 3]}),
    ("-%a.first()", {"a": [5]}),
    ("%a.union(%b).count()", {"a": [1, 2], "b": [2, 3]}),
    ("%q.value is Quantity", {"q": {"value": {"value": 1, "unit": "mg"}}}),
    ("%a.aggregate($total + $this, 0)", {"a": [1, 2, 3]}),
    ("%'a'.count()", {"a": [1, 2]}),
    ("(%a | %b).distinct().count()", {"a": [{"x": 1}, {"x": 1.0}], "b": [{"x": 1}]}),
    ("iif(%a.exists(), 'yes', {})", {"a": []}),
    ("%undefined.exists()", {}),
    ("%a.noSuchFunction()", {"a": [1]}),
    ("%a.substring('x')", {"a": ["abc"]}),
    ("%a.take(%a)", {"a": [1, 2]}),
])
def test_outside_the_knowledge_too(expression: str, variables: dict[str, Any]) -> None:
    PLAIN.use({})
    fast = _outcome(lambda: compile_expression(expression).evaluate({}, variables, merge_functions({})))
    plain = _outcome(lambda: PLAIN.evaluate(expression, {}, variables))
    assert fast == plain


def test_shared_sub_expressions_are_remembered_per_request_and_resource() -> None:
    calls: list[str] = []

    def tracked(inputs: list[Any]) -> list[int]:
        calls.append("tracked")
        return [len(inputs)]

    functions = merge_functions({"tracked": FunctionSpec(tracked)})
    resources = [{"resourceType": "Observation", "id": str(i), "status": "final"} for i in range(3)]
    first = compile_expression("%r.where(tracked() = 1 and status = 'final').count()")
    second = compile_expression("%r.where(tracked() = 1 and id != '1').count()")  # another expression, same sub-expression
    assert plain_list(first.evaluate({}, {"r": resources}, functions)) == [3]
    assert plain_list(second.evaluate({}, {"r": resources}, functions)) == [2]
    assert len(calls) == 3  # once per resource, not once per resource per expression
    fresh = merge_functions({"tracked": FunctionSpec(tracked)})  # the next request remembers nothing
    assert plain_list(second.evaluate({}, {"r": resources}, fresh)) == [2]
    assert len(calls) == 6


def test_sub_expressions_with_variables_are_not_remembered() -> None:
    functions = merge_functions({})
    resources = [{"resourceType": "Observation", "id": "a", "status": "final"}]
    expression = compile_expression("%r.where(status = %s).count()")
    assert plain_list(expression.evaluate({}, {"r": resources, "s": "final"}, functions)) == [1]
    assert plain_list(expression.evaluate({}, {"r": resources, "s": "amended"}, functions)) == [0]
