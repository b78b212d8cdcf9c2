"""FHIRPath compilation and evaluation on top of fhirpathpy.

fhirpathpy's own ``compile`` copies the variables into a plain dict and reads the host
clock for ``now()``/``today()``. We need two things it cannot give: variables that are
computed lazily (a shared definition is only evaluated when a condition reads it, and
only once per request) and a clock that is an input of the evaluation (the engine is
pure). So we parse once with fhirpathpy and drive its evaluator with our own context.

Two things make that evaluator cheaper without changing what it computes:

- **Built-ins merged once.** fhirpathpy merges its ~100 built-in functions with the user
  functions into a new dict on *every* function call and operator (``doInvoke``,
  ``infix_invoke``): thousands of dict copies per request. The engine merges them once per
  request (``merge_functions``) and our evaluation context carries the merged table;
  ``doInvoke``/``infix_invoke`` are wrapped to use it when present (any other caller of
  fhirpathpy gets the original functions, unchanged).
- **Constant sub-expressions folded at load.** ``status in ('final' | 'amended' | 'corrected')``
  re-parsed three string literals (regex substitutions) and de-duplicated their union (a
  ``json.dumps`` per item) for every resource a ``where`` visited. Literal sub-trees (strings,
  numbers, booleans, ``{}``, and unions or parentheses of them) and member/function names are
  evaluated once when the expression is compiled and replaced by their value.
- **Unions de-duplicated with orjson.** FHIRPath's ``|`` removes duplicates; fhirpathpy finds
  them by ``json.dumps(item, sort_keys=True)`` of every item, 15-20 us for a resource, so
  ``(%creatinineResults | %egfrResults)`` cost more than the ``where()`` after it. Our ``|``,
  ``union()`` and ``distinct()`` key JSON objects and arrays with ``orjson`` (sorted keys) instead,
  which gives the same equal/not-equal answer for JSON data, and fall back to fhirpathpy's key for
  anything orjson cannot serialise.
- **The tree walked once.** Each expression is also turned into nested closures that do what
  fhirpathpy's evaluator does node by node, without re-walking the tree on every evaluation
  (``fhirpath_closures.py``).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import fhirpathpy.engine as _fp_engine
import orjson
from antlr4 import CommonTokenStream, InputStream, Token
from antlr4.error.ErrorListener import ErrorListener
from antlr4.tree.Tree import ParseTreeWalker
from fhirpathpy.engine import do_eval, util
from fhirpathpy.engine.evaluators import evaluators as _EVALUATORS
from fhirpathpy.engine.invocations import invocation_registry as _BUILTIN_FUNCTIONS
from fhirpathpy.engine.invocations.existence import distinct_fn as _fhirpathpy_distinct
from fhirpathpy.engine.nodes import FP_Quantity, FP_Type, ResourceNode
from fhirpathpy.engine.util import arraify, get_data
from fhirpathpy.engine.util import uniq as _fhirpathpy_uniq
from fhirpathpy.models import models
from fhirpathpy.parser.ASTPathListener import ASTPathListener
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from . import fhirpath_closures as _closures
from .fhirpath_closures import MERGED_FUNCTIONS as _MERGED_FUNCTIONS
from .fhirpath_closures import Closure, compile_closure

R4_MODEL = models["r4"]
USE_CLOSURES = True  # False: every expression through fhirpathpy's interpreter (tests compare the two)

# A user function receives the fhirpathpy context, the input collection (raw nodes) and
# its evaluated arguments, and returns a value or a list of values.
FhirPathFunction = Callable[..., Any]


class FhirPathSyntaxError(ValueError):
    """An expression that does not parse; the message quotes the expression."""


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A custom FHIRPath function in fhirpathpy's invocation-table shape."""

    fn: FhirPathFunction
    arity: Mapping[int, list[str]] | None = None  # None: takes no arguments

    def as_invocation(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"fn": self.fn}
        if self.arity is not None:
            entry["arity"] = dict(self.arity)
        return entry


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """A FHIRPath expression parsed once at knowledge load."""

    source: str
    _parsed: Any = field(repr=False, compare=False)
    _run: Closure | None = field(default=None, repr=False, compare=False)  # None: fhirpathpy's interpreter
    # The operands of a top-level ``and`` chain (``A and B and C`` -> A, B, C); empty when there is none.
    conjuncts: tuple[CompiledExpression, ...] = field(default=(), repr=False, compare=False)

    def evaluate(
        self,
        root: Any,
        variables: Mapping[str, Any],
        functions: Mapping[str, dict[str, Any]],
    ) -> list[Any]:
        """Evaluate and return raw nodes (ResourceNode / FP types / primitives).

        Raw nodes keep their FHIR type, so a variable holding ``%obs.value`` can still be
        filtered with ``ofType(Quantity)`` by a later expression.
        """
        data_root = arraify(root)
        ctx = {
            "dataRoot": data_root,
            "vars": variables,
            "model": R4_MODEL,
            "userInvocationTable": functions,
            _MERGED_FUNCTIONS: functions if isinstance(functions, MergedFunctions) else merge_functions(functions),
        }
        if self._run is not None and USE_CLOSURES:
            result = self._run(ctx, data_root)
        else:
            result = do_eval(ctx, data_root, self._parsed["children"][0])
        return _drop_primitive_extension_nodes(arraify(result))


class _RaisingErrorListener(ErrorListener):
    def syntaxError(self, recognizer, offendingSymbol, line, column, msg, e):
        raise FhirPathSyntaxError(f"column {column + 1}: {msg}")


def compile_expression(source: str) -> CompiledExpression:
    """Parse once. Unlike fhirpathpy.parse, a syntax error (or trailing junk) is an error:
    fhirpathpy's parser recovers silently and would run a different expression."""
    if not isinstance(source, str) or not source.strip():
        raise FhirPathSyntaxError("empty FHIRPath expression")
    try:
        listener = _RaisingErrorListener()
        lexer = FHIRPathLexer(InputStream(source))
        lexer.removeErrorListeners()
        lexer.addErrorListener(listener)
        tokens = CommonTokenStream(lexer)
        parser = FHIRPathParser(tokens)
        parser.removeErrorListeners()
        parser.addErrorListener(listener)
        tree = parser.expression()
        if tokens.LA(1) != Token.EOF:
            raise FhirPathSyntaxError(f"unexpected {tokens.LT(1).text!r} at column {tokens.LT(1).column + 1}")
        ast = ASTPathListener()
        ParseTreeWalker().walk(ast, tree)
    except FhirPathSyntaxError as exc:
        raise FhirPathSyntaxError(f"cannot parse FHIRPath {source!r}: {exc}") from None
    except Exception as exc:  # ANTLR and the AST listener raise plain exceptions
        raise FhirPathSyntaxError(f"cannot parse FHIRPath {source!r}: {type(exc).__name__}") from None
    parsed = ast.parentStack[0]
    _fold_constants(parsed)
    parts = _and_operands(parsed["children"][0])
    conjuncts = tuple(
        CompiledExpression(source=f"{source} (operand {index + 1} of and)", _parsed={"children": [part]}, _run=compile_closure(part))
        for index, part in enumerate(parts)
    ) if len(parts) > 1 else ()
    return CompiledExpression(source=source, _parsed=parsed, _run=compile_closure(parsed["children"][0]), conjuncts=conjuncts)


def _and_operands(node: dict[str, Any]) -> list[dict[str, Any]]:
    if node.get("type") == "AndExpression" and len(node.get("children") or []) == 2:
        return _and_operands(node["children"][0]) + _and_operands(node["children"][1])
    return [node]


def member_names(expression: CompiledExpression) -> frozenset[str]:
    """Every element name the expression navigates (``code``, ``coding``, ``value`` ...)."""
    names: set[str] = set()
    stack = [expression._parsed]
    while stack:
        node = stack.pop()
        children = node.get("children") or []
        if node.get("type") == "MemberInvocation" and children and isinstance(children[0].get("text"), str):
            names.add(children[0]["text"])
        stack.extend(children)
    return frozenset(names)


def plain(value: Any) -> Any:
    """Turn a raw fhirpathpy node into JSON-like Python data (FP types kept as strings)."""
    data = get_data(value)
    if isinstance(data, list):
        return [plain(item) for item in data]
    if isinstance(data, FP_Type):
        return str(data)
    if isinstance(data, dict):
        return {key: plain(item) for key, item in data.items()}
    return data


def plain_list(values: list[Any]) -> list[Any]:
    return [plain(value) for value in values]


def is_true(values: list[Any]) -> bool:
    """FHIRPath condition semantics used by $apply: only a single ``true`` passes."""
    return len(values) == 1 and get_data(values[0]) is True


def format_value(value: Any) -> str:
    """Render one evaluated item for card text."""
    data = plain(value)
    if isinstance(data, bool):
        return "yes" if data else "no"
    if isinstance(data, Decimal):
        return format_decimal(data)
    if isinstance(data, float):
        return format_decimal(Decimal(str(data)))
    return str(data)


def format_decimal(number: Decimal) -> str:
    if number == number.to_integral_value():
        return str(number.to_integral_value())
    rounded = number.quantize(Decimal("0.01")).normalize()
    return format(rounded, "f")


def _drop_primitive_extension_nodes(values: list[Any]) -> list[Any]:
    # fhirpathpy represents `_field` primitive extensions as dict nodes with only an
    # "extension" key; they are not values of the expression.
    kept = []
    for value in values:
        if isinstance(value, ResourceNode) and isinstance(value.data, dict) and list(value.data) == ["extension"]:
            continue
        kept.append(value)
    return kept


# --------------------------------------------------------------------------- speed-ups
# See the module docstring. Both keep fhirpathpy's results exactly: the merged table is the
# dict fhirpathpy would build, and a folded node returns what fhirpathpy returned for it.


class MergedFunctions(dict):
    """fhirpathpy's built-in functions plus ours, merged once (ours win, as in fhirpathpy).

    One per request; it also carries the request's remembered sub-expression values
    (``memo``, see ``fhirpath_closures``), which are only valid for that request's functions.
    """

    memo: dict[Any, Any]


def merge_functions(functions: Mapping[str, dict[str, Any]]) -> MergedFunctions:
    merged = MergedFunctions({**_BUILTIN_FUNCTIONS, **_FAST_BUILT_INS, **functions})
    merged.memo = {}
    return merged


def uniq(items: list[Any]) -> list[Any]:
    """fhirpathpy's ``util.uniq`` (keep order, last duplicate's value wins) with a cheaper key.

    Two JSON values have equal ``orjson.dumps(sort_keys)`` exactly when they have equal
    ``json.dumps(sort_keys=True)`` (both tell 1 from 1.0 and true from 1; parsed JSON holds no
    NaN). If orjson refuses any object or array of the list (a Decimal, a big integer, a
    non-string key), the whole list is de-duplicated by fhirpathpy's own ``uniq``. Other items
    (strings, numbers, FHIRPath types) get fhirpathpy's key; they can never equal an object's
    key, as in fhirpathpy.
    """
    ordered: OrderedDict[Any, Any] = OrderedDict()
    for item in items:
        if isinstance(item, (dict, list)):
            try:
                key: Any = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
            except (TypeError, orjson.JSONEncodeError):
                return _fhirpathpy_uniq(items)  # one key scheme per call, or equal items could get different keys
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
        return _fhirpathpy_distinct(ctx, items)
    return uniq(items)


def _union(ctx: Any, first: list[Any], second: list[Any]) -> list[Any]:
    return _distinct(ctx, first + second)


_FAST_BUILT_INS = {
    "|": {**_BUILTIN_FUNCTIONS["|"], "fn": _union},
    "union": {**_BUILTIN_FUNCTIONS["union"], "fn": _union},
    "distinct": {**_BUILTIN_FUNCTIONS["distinct"], "fn": _distinct},
}
_closures.STATIC_FUNCTIONS.update({**_BUILTIN_FUNCTIONS, **_FAST_BUILT_INS})


_fhirpathpy_do_invoke = _fp_engine.doInvoke
_fhirpathpy_infix_invoke = _fp_engine.infix_invoke


def _do_invoke(ctx, fn_name, data, raw_params):
    """fhirpathpy 2.2.4 ``engine.doInvoke`` without its per-call registry merge."""
    invocation_registry = ctx.get(_MERGED_FUNCTIONS)
    if invocation_registry is None:
        return _fhirpathpy_do_invoke(ctx, fn_name, data, raw_params)

    if isinstance(fn_name, list) and len(fn_name) == 1:
        fn_name = fn_name[0]
    if not isinstance(fn_name, str) or fn_name not in invocation_registry:
        raise Exception("Not implemented: " + str(fn_name))
    invocation = invocation_registry[fn_name]

    if "nullable_input" in invocation and util.is_nullable(data):
        return []

    if "variadic" in invocation:
        tp = invocation["variadic"]
        raw_params_list = raw_params if isinstance(raw_params, list) else []
        this_value = ctx["$this"] if "$this" in ctx else ctx["dataRoot"]
        params = [_fp_engine.make_param(ctx, this_value, tp, pr) for pr in raw_params_list]
        return util.arraify(invocation["fn"](ctx, util.arraify(data), *params))

    if "arity" not in invocation:
        if raw_params is None or util.is_empty(raw_params):
            return util.arraify(invocation["fn"](ctx, util.arraify(data)))
        raise Exception(fn_name + " expects no params")

    if invocation["fn"].__name__ == "trace_fn" and raw_params is not None:
        raw_params = raw_params[:1]

    params_number = len(raw_params) if isinstance(raw_params, list) else 0
    if params_number not in invocation["arity"]:
        raise Exception(fn_name + " wrong arity: got " + str(params_number))

    arg_types = invocation["arity"][params_number]
    this_value = ctx["$this"] if "$this" in ctx else ctx["dataRoot"]
    params = [ctx, data]
    for i in range(params_number):
        params.append(_fp_engine.make_param(ctx, this_value, arg_types[i], raw_params[i]))

    if "nullable" in invocation and any(util.is_nullable(x) for x in params):
        return []
    return util.arraify(invocation["fn"](*params))


def _infix_invoke(ctx, fn_name, data, raw_params):
    """fhirpathpy 2.2.4 ``engine.infix_invoke`` without its per-call registry merge."""
    invocation_registry = ctx.get(_MERGED_FUNCTIONS)
    if invocation_registry is None:
        return _fhirpathpy_infix_invoke(ctx, fn_name, data, raw_params)
    if fn_name not in invocation_registry or "fn" not in invocation_registry[fn_name]:
        raise Exception("Not implemented " + fn_name)
    invocation = invocation_registry[fn_name]
    if len(raw_params) != 2:
        raise Exception("Infix invoke should have arity 2")
    arg_types = invocation["arity"][2]
    if arg_types is None:
        return []
    params = [ctx]
    for i in range(2):
        params.append(_fp_engine.make_param(ctx, data, arg_types[i], raw_params[i]))
    if "nullable" in invocation and any(util.is_nullable(x) for x in params):
        return []
    return util.arraify(invocation["fn"](*params))


_fp_engine.doInvoke = _do_invoke
_fp_engine.infix_invoke = _infix_invoke

# Constant folding. A folded node keeps its other keys (fhirpathpy reads "text" of some nodes
# directly) and gets a node type of its own whose evaluator returns a copy of the value.
_CONSTANT = "B12Constant"
_EVALUATORS[_CONSTANT] = lambda _ctx, _parent, node: list(node["value"])
# Node types whose value never depends on the input, the variables or the context.
_CONSTANT_TYPES = frozenset({
    "LiteralTerm", "StringLiteral", "NumberLiteral", "BooleanLiteral", "NullLiteral",
    "UnionExpression", "ParenthesizedTerm", "TermExpression", "Identifier",
})
# Never folded as a whole: make_param inspects a TermExpression parameter's node type.
_NOT_A_FOLD_ROOT = frozenset({"TermExpression"})
_FOLD_CONTEXT = {"dataRoot": [], "vars": {}, "model": R4_MODEL, "userInvocationTable": {}}


def _fold_constants(node: dict[str, Any]) -> bool:
    """Fold the maximal constant sub-trees below ``node``; True if ``node`` itself is constant."""
    children = node.get("children") or []
    constant_children = [_fold_constants(child) if isinstance(child, dict) else False for child in children]
    constant = node.get("type") in _CONSTANT_TYPES and all(constant_children)
    if not constant:
        for child, child_constant in zip(children, constant_children):
            if child_constant:
                _fold(child)
    return constant


def _fold(node: dict[str, Any]) -> None:
    while node.get("type") in _NOT_A_FOLD_ROOT:
        children = node.get("children") or []
        if len(children) != 1:
            return
        node = children[0]
    try:
        value = do_eval(dict(_FOLD_CONTEXT), [], node)
    except Exception:  # leave it to fail (or not) at evaluation time, as before
        return
    if not isinstance(value, list) or not all(isinstance(item, (str, int, Decimal, bool)) for item in value):
        return
    node["type"] = _CONSTANT
    node["value"] = tuple(value)
