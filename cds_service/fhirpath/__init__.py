"""FHIRPath for the knowledge: one public API over fhirpathpy, which it never modifies.

    compiled = compile_expression("%obs.where(status = 'final').count()")   # FhirPathSyntaxError
    table = merge_functions({"daysSince": FunctionSpec(days_since)})       # once per request
    items = compiled.evaluate(patient, variables, table)                   # fhirpathpy's raw items

Results are those of plain fhirpathpy 2.2.4 (``fhirpathpy.compile(source, models["r4"],
{"userInvocationTable": user_invocation_table(functions), "returnRawData": True})``), computed
faster: the parse tree is compiled to closures once, constants are folded, the function table
is merged once per request, unions de-duplicate with orjson, and sub-expressions that depend
only on a resource are remembered per request (see ``_closures``).
``tests/knowledge/test_fhirpath_equivalence.py`` holds it to that on every expression of the
knowledge and every fixture. What would let fhirpathpy do this itself: docs/fhirpath-upstream.md.
"""

from __future__ import annotations

from ._expression import CompiledExpression, compile_expression
from ._functions import (
    BUILTIN_FUNCTION_NAMES,
    FhirPathFunction,
    FunctionSpec,
    FunctionTable,
    merge_functions,
    user_invocation_table,
)
from ._parse import FhirPathSyntaxError
from ._values import (
    data_of,
    datetime_text,
    format_decimal,
    format_value,
    is_true,
    plain,
    plain_list,
    quantity_literal,
    typed_node,
)

__all__ = [
    "BUILTIN_FUNCTION_NAMES",
    "CompiledExpression",
    "FhirPathFunction",
    "FhirPathSyntaxError",
    "FunctionSpec",
    "FunctionTable",
    "compile_expression",
    "data_of",
    "datetime_text",
    "format_decimal",
    "format_value",
    "is_true",
    "merge_functions",
    "plain",
    "plain_list",
    "quantity_literal",
    "typed_node",
    "user_invocation_table",
]
