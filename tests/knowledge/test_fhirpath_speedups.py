"""The FHIRPath speed-ups (constant folding, merged function table, orjson unions) change no result."""

from __future__ import annotations

from decimal import Decimal

import fhirpathpy
import pytest
from fhirpathpy.models import models

from cds_service.fhirpath import (
    FunctionSpec,
    compile_expression,
    merge_functions,
    plain_list,
)

RESOURCE = {
    "resourceType": "Observation", "id": "o1", "status": "amended",
    "code": {"coding": [{"system": "http://loinc.org", "code": "2132-9"}], "text": "B12 'quoted'"},
    "valueQuantity": {"value": 245, "unit": "pg/mL"},
    "component": [{"valueString": "a"}, {"valueString": "b"}],
}

EXPRESSIONS = [
    "status in ('final' | 'amended' | 'corrected')",
    "status in ('final' | 'corrected')",
    "('a' | 'b' | 'a').count()",
    "('a' | 'b') | ('b' | 'c')",
    "(1 | 2 | 2 | 3.5).count()",
    "iif(status = 'amended', 'yes', {})",
    "iif(status = 'final', 'yes', {})",
    "{}",
    "{}.empty()",
    "'it\\'s' = 'it\\'s'",
    "'tab\\tand \\'quote\\''",
    "code.text",
    "value.ofType(Quantity).value > 200",
    "-5 + 3",
    "(true and false) or (true | false).count() = 2",
    "component.value.ofType(string)",
    "component.where(value.ofType(string) in ('a' | 'z')).count()",
    "`status` = 'amended'",
    "code.coding.where(system = 'http://loinc.org').code",
    "1.50 * 2",
]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_folded_expressions_give_fhirpathpys_own_result(expression: str) -> None:
    expected = fhirpathpy.evaluate(RESOURCE, expression, None, models["r4"])
    got = plain_list(compile_expression(expression).evaluate(RESOURCE, {}, {}))
    assert _normal(got) == _normal(expected)


def _normal(values: list) -> list:
    return [str(v) if isinstance(v, Decimal) else v for v in values]


def test_each_evaluation_gets_its_own_list() -> None:
    compiled = compile_expression("('a' | 'b')")
    first = compiled.evaluate({}, {}, {})
    first.append("mutated")
    assert plain_list(compiled.evaluate({}, {}, {})) == ["a", "b"]


def test_user_functions_override_built_ins_in_the_merged_table() -> None:
    def mine(_inputs):
        return ["mine"]

    merged = merge_functions({"now": FunctionSpec(mine)})
    assert "where" in merged
    assert plain_list(compile_expression("now()").evaluate({}, {}, merged)) == ["mine"]
    assert plain_list(compile_expression("now()").evaluate({}, {}, {"now": FunctionSpec(mine)})) == ["mine"]


def test_plain_fhirpathpy_callers_are_unaffected() -> None:
    assert fhirpathpy.evaluate({"a": [1, 2, 3]}, "a.where($this > 1).count()") == [2]
    assert fhirpathpy.evaluate({}, "'x' | 'y'") == ["x", "y"]


UNIQ_CASES = [
    [{"a": 1, "b": [1, 2]}, {"b": [1, 2], "a": 1}, {"a": 1.0, "b": [1, 2]}, {"a": True, "b": [1, 2]}],
    [{"x": "é"}, {"x": "\u00e9"}, {"x": "e"}, {"x": None}, {}],
    [[1, 2], [2, 1], [1, 2], [1.0, 2]],
    ["a", "b", "a", 1, 1.0, True, None, "1"],
    [{"v": Decimal("1.5")}, {"v": Decimal("1.5")}, {"v": 1.5}],
    [{"big": 2**70}, {"big": 2**70}, {"big": 2**70 + 1}],
    [{1: "x"}, {"1": "x"}, {1: "x"}],
    [Decimal("1"), Decimal("1.0"), 1],
]


@pytest.mark.parametrize("items", UNIQ_CASES)
def test_unions_find_the_same_duplicates_as_fhirpathpy(items: list) -> None:
    # The orjson key, and the fall-back to fhirpathpy's own for what orjson refuses.
    for expression in ("%a | %b", "%a.distinct()", "%a.union(%b)"):
        variables = {"a": items, "b": items[:1]}
        got = compile_expression(expression).evaluate({}, variables, {})
        expected = fhirpathpy.evaluate({}, expression, variables, models["r4"], {"returnRawData": True})
        assert [repr(plain_list([x])) for x in got] == [repr(plain_list([x])) for x in expected]


def test_union_of_inputs_keeps_fhirpathpys_answer() -> None:
    a = [{"resourceType": "Observation", "id": "1", "status": "final"}, {"resourceType": "Observation", "id": "2", "status": "final"}]
    b = [dict(a[1]), {"resourceType": "Observation", "id": "3", "status": "final"}]
    expression = compile_expression("(%a | %b).id")
    got = plain_list(expression.evaluate({}, {"a": a, "b": b}, {}))
    assert got == fhirpathpy.evaluate({}, "(%a | %b).id", {"a": a, "b": b}, models["r4"]) == ["1", "2", "3"]
    assert plain_list(compile_expression("(%a | %b).distinct().count()").evaluate({}, {"a": a, "b": b}, {})) == [3]
