"""Custom functions, and the one function table a request evaluates with.

A custom function follows fhirpathpy's documented ``userInvocationTable`` convention: it
receives the input collection as data (``get_data`` of each item) and its evaluated arguments,
and returns a value or a list. ``user_invocation_table`` gives exactly what fhirpathpy's
``evaluate(..., options={"userInvocationTable": ...})`` takes, so plain fhirpathpy and the
compiled expressions run the same functions the same way.

fhirpathpy merges its ~100 built-ins with the user table into a new dict on every function
call and operator; ``merge_functions`` does it once (per request), and the compiled
expressions look functions up there. The table also carries the request's remembered
sub-expression values (``memo``), which are only valid for that request's functions.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ._fhirpathpy import INVOCATIONS as invocation_registry
from ._fhirpathpy import FP_Quantity, ResourceNode, process_user_invocation_table
from ._fhirpathpy import distinct_fn as _fhirpathpy_distinct
from ._fhirpathpy import uniq as _fhirpathpy_uniq

# fn(inputs as data, *arguments) -> a value or a list of values (fhirpathpy's documented shape).
FhirPathFunction = Callable[..., Any]
Invocation = dict[str, Any]  # one entry of fhirpathpy's invocation table: {"fn", "arity", ...}

BUILTIN_FUNCTION_NAMES: frozenset[str] = frozenset(invocation_registry)


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A custom FHIRPath function: what fhirpathpy's user invocation table holds for it."""

    fn: FhirPathFunction
    arity: Mapping[int, list[str]] | None = None  # None: takes no arguments

    def as_invocation(self) -> Invocation:
        entry: Invocation = {"fn": self.fn}
        if self.arity is not None:
            entry["arity"] = dict(self.arity)
        return entry


def user_invocation_table(functions: Mapping[str, FunctionSpec]) -> dict[str, Invocation]:
    """``options={"userInvocationTable": ...}`` for plain ``fhirpathpy.evaluate``/``compile``."""
    return {name: spec.as_invocation() for name, spec in functions.items()}


class FunctionTable(dict[str, Invocation]):
    """fhirpathpy's built-ins plus the custom functions, merged once (custom ones win, as in
    fhirpathpy). Build one per request with ``merge_functions``."""

    user: dict[str, Invocation]  # the custom functions as fhirpathpy wraps them (its ctx["userInvocationTable"])
    memo: dict[Any, Any]  # remembered sub-expression values, see _closures


def merge_functions(functions: Mapping[str, FunctionSpec]) -> FunctionTable:
    user = process_user_invocation_table(user_invocation_table(functions))
    table = FunctionTable({**invocation_registry, **_FAST_BUILT_INS, **user})
    table.user = user
    table.memo = {}
    return table


def uniq(items: list[Any]) -> list[Any]:
    """fhirpathpy's ``util.uniq`` (keep order, last duplicate's value wins) with a cheaper key.

    FHIRPath's ``|`` removes duplicates; fhirpathpy finds them by ``json.dumps(sort_keys=True)``
    of every item (15-20 us for a resource). Two JSON values have equal
    ``orjson.dumps(sort_keys)`` exactly when they have equal ``json.dumps(sort_keys=True)`` (both
    tell 1 from 1.0 and true from 1; parsed JSON holds no NaN). If orjson refuses any object or
    array of the list (a Decimal, a big integer, a non-string key), the whole list is
    de-duplicated by fhirpathpy's own ``uniq``. Other items get fhirpathpy's key; they can never
    equal an object's key, as in fhirpathpy.
    """
    ordered: OrderedDict[Any, Any] = OrderedDict()
    for item in items:
        if isinstance(item, (dict, list)):
            try:
                key: Any = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
            except (TypeError, orjson.JSONEncodeError):
                return list(_fhirpathpy_uniq(items))  # one key scheme per call, or equal items could get different keys
        else:
            try:
                key = json.dumps(item, sort_keys=True)
            except TypeError:
                key = str(item)
        ordered[key] = item
    return list(ordered.values())


def _distinct(ctx: Any, items: list[Any]) -> list[Any]:
    """fhirpathpy 2.2.4 ``distinct_fn`` with ``uniq`` above."""
    if all(isinstance(item, ResourceNode) for item in items):
        return [ResourceNode.create_node(data) for data in uniq([item.data for item in items])]
    if all(isinstance(item, FP_Quantity) for item in items):
        return list(_fhirpathpy_distinct(ctx, items))
    return uniq(items)


def _union(ctx: Any, first: list[Any], second: list[Any]) -> list[Any]:
    return _distinct(ctx, first + second)


# Same arity and flags as fhirpathpy's entries; only the function differs (a copy, never fhirpathpy's dict).
_FAST_BUILT_INS: dict[str, Invocation] = {
    "|": {**invocation_registry["|"], "fn": _union},
    "union": {**invocation_registry["union"], "fn": _union},
    "distinct": {**invocation_registry["distinct"], "fn": _distinct},
}
# The built-in entries of every merged table: an operator whose entry is one of these takes
# the closures' fast path.
STATIC_FUNCTIONS: dict[str, Invocation] = {**invocation_registry, **_FAST_BUILT_INS}
