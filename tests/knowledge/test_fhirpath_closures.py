"""The closure-compiled FHIRPath gives exactly what fhirpathpy's interpreter gives.

Every clinical fixture is evaluated with ``explain``, which records the value (or error) of
every condition and every named definition the engine evaluates, once with the closures and
once with fhirpathpy's tree-walking interpreter; the traces and the cards must be identical.
"""

from __future__ import annotations

from datetime import timezone

import pytest

from cds_service.fhir.client import FhirClient
from cds_service.knowledge import fhirpath
from cds_service.knowledge.fhirpath import compile_expression, plain_list
from cds_service.pipeline import decide
from cds_service.protocol.models import HookRequest

from ..support.scenarios import load_scenarios

SCENARIOS = load_scenarios()


def _run(knowledge, scenario):
    request = HookRequest.from_json(scenario.request)
    service = knowledge.service_for_hook(request.hook)
    result = decide(knowledge, service, request, FhirClient(), scenario.now.astimezone(timezone.utc), explain=True)
    traces = [
        (t.recommendation_id, [(c.card_id, c.fired, c.suppressed_by, [(e.name, repr(e.value), e.error) for e in c.conditions]) for c in t.cards],
         sorted((name, repr(e.value), e.error) for name, e in t.variables.items()))
        for t in result.traces
    ]
    return result.response(request.hook_instance), traces


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_closures_and_interpreter_agree_on_every_value(scenario, knowledge, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled_cards, compiled_traces = _run(knowledge, scenario)
    monkeypatch.setattr(fhirpath, "USE_CLOSURES", False)
    interpreted_cards, interpreted_traces = _run(knowledge, scenario)
    assert compiled_traces == interpreted_traces
    assert compiled_cards == interpreted_cards


@pytest.mark.parametrize("expression, variables, expected", [
    ("%a.where($this > 1).select($this * 2)", {"a": [1, 2, 3]}, [4, 6]),
    ("%a.where($index = 1)", {"a": ["x", "y"]}, ["y"]),
    ("%a.exists($this = 'y') and %a.all($this.length() = 1)", {"a": ["x", "y"]}, [True]),
    ("coalesce(%missing, %a.first())", {"a": ["x"], "missing": None}, ["x"]),
    ("%a.take(2).skip(1) | %a.last()", {"a": [1, 2, 3]}, [2, 3]),
    ("%a[1]", {"a": [1, 2, 3]}, [2]),
    ("-%a.first()", {"a": [5]}, [-5]),
    ("%a.union(%b).count()", {"a": [1, 2], "b": [2, 3]}, [3]),
    ("%q.value is Quantity", {"q": {"value": {"value": 1, "unit": "mg"}}}, [False]),
    ("%a.aggregate($total + $this, 0)", {"a": [1, 2, 3]}, [6]),
])
def test_closures_match_the_interpreter_beyond_the_knowledge(expression, variables, expected, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = compile_expression(expression)
    got = plain_list(compiled.evaluate({}, variables, {}))
    monkeypatch.setattr(fhirpath, "USE_CLOSURES", False)
    assert plain_list(compiled.evaluate({}, variables, {})) == got
    assert got == expected


@pytest.mark.parametrize("expression, variables", [
    ("%undefined.exists()", {}),
    ("%a.noSuchFunction()", {"a": [1]}),
    ("%a.substring('x')", {"a": ["abc"]}),
    ("%a.take(%a)", {"a": [1, 2]}),
])
def test_closures_fail_where_the_interpreter_fails(expression, variables, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = compile_expression(expression)
    with pytest.raises(Exception) as closure_error:
        compiled.evaluate({}, variables, {})
    monkeypatch.setattr(fhirpath, "USE_CLOSURES", False)
    with pytest.raises(Exception) as interpreter_error:
        compiled.evaluate({}, variables, {})
    assert type(closure_error.value) is type(interpreter_error.value)
    assert str(closure_error.value) == str(interpreter_error.value)


def test_shared_sub_expressions_are_remembered_per_request_and_resource() -> None:
    from cds_service.knowledge.fhirpath import merge_functions

    calls: list[str] = []

    def tracked(_ctx, inputs):
        calls.append("tracked")
        return [len(inputs)]

    functions = merge_functions({"tracked": {"fn": tracked}})
    resources = [{"resourceType": "Observation", "id": str(i), "status": "final"} for i in range(3)]
    first = compile_expression("%r.where(tracked() = 1 and status = 'final').count()")
    second = compile_expression("%r.where(tracked() = 1 and id != '1').count()")  # a different expression, same sub-expression
    assert plain_list(first.evaluate({}, {"r": resources}, functions)) == [3]
    assert plain_list(second.evaluate({}, {"r": resources}, functions)) == [2]
    assert len(calls) == 3  # once per resource, not once per resource per expression
    fresh = merge_functions({"tracked": {"fn": tracked}})  # the next request remembers nothing
    assert plain_list(second.evaluate({}, {"r": resources}, fresh)) == [2]
    assert len(calls) == 6


def test_sub_expressions_with_variables_or_parameters_are_not_remembered() -> None:
    from cds_service.knowledge.fhirpath import merge_functions

    functions = merge_functions({})
    resources = [{"resourceType": "Observation", "id": "a", "status": "final"}]
    assert plain_list(compile_expression("%r.where(status = %s).count()").evaluate({}, {"r": resources, "s": "final"}, functions)) == [1]
    assert plain_list(compile_expression("%r.where(status = %s).count()").evaluate({}, {"r": resources, "s": "amended"}, functions)) == [0]
