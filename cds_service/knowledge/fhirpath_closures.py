"""fhirpathpy's evaluator, with the tree walk done once at load: an AST becomes nested closures.

fhirpathpy evaluates an expression by walking its parse tree on every call: ``do_eval`` looks up
an evaluator by node type for every node, pass-through nodes (``TermExpression``,
``InvocationTerm``, ``ParenthesizedTerm``) cost a call each, and every function call re-evaluates
the function's name node and re-reads its parameter list. Inside a ``where()`` that happens for
every resource. Here each node is turned, once, into a closure ``f(ctx, focus) -> list`` that does
exactly what fhirpathpy's evaluator for that node does (same invocation functions, same
parameter checks, same ``$this``/``$index`` handling, same exceptions), with the walk already
done. Node types not handled here fall back to fhirpathpy's own evaluator for that sub-tree.

**Shared sub-expressions.** Different definitions often test the same thing on the same
resources: ``status in ('final' | 'amended' | 'corrected')`` or ``effectiveDate().daysSince()``
on every B12 result, in five definitions. A sub-expression whose value depends on nothing but
the resource it is applied to (member access, functions without parameters, literals and
operators on them; no ``%variable``, no ``$this``/``$index``, no function parameters) is
evaluated once per resource per request: its value is remembered in the request's function
table, keyed by the sub-expression's structure and the resource object. The custom functions
are pure for a request (the clock and record are fixed), and fhirpathpy's parameterless
built-ins are pure. The one side effect such a sub-tree has in fhirpathpy, an operator setting
``$this`` to its focus, is replayed when a remembered value is used.

Nothing here knows about clinical content: it is a faster way to run fhirpathpy 2.2.4's semantics.
``tests/knowledge/test_fhirpath_closures.py`` checks every expression of the knowledge against
the interpreter on every clinical fixture.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import reduce
from typing import Any

import fhirpathpy.engine as fp
from fhirpathpy.engine import nodes, util
from fhirpathpy.engine.evaluators import create_reduce_member_invocation, identifier

Closure = Callable[[dict, Any], list]

MERGED_FUNCTIONS = "b12:mergedInvocationTable"  # the context key fhirpath.py puts the merged table under
# The built-in entries of every request's merged table (fhirpath.py fills it at import): an
# operator whose entry is still the built-in one takes the fast path in _infix.
STATIC_FUNCTIONS: dict[str, dict[str, Any]] = {}
_NO_CONTEXT: dict[str, Any] = {"dataRoot": [], "vars": {}, "userInvocationTable": {}}

_OPERATORS = {
    "InequalityExpression": None, "AdditiveExpression": None, "MultiplicativeExpression": None,
    "EqualityExpression": None, "OrExpression": None, "ImpliesExpression": None, "AndExpression": None,
    "XorExpression": None,
    "MembershipExpression": {"contains": "containsOp", "in": "inOp"},
    "TypeExpression": {"is": "isOp", "as": "asOp"},
}


def compile_closure(node: dict[str, Any]) -> Closure:
    handler = _HANDLERS.get(node.get("type"))  # type: ignore[arg-type]
    compiled = handler(node) if handler is not None else None
    if compiled is None:
        compiled = _interpreted(node)
    if _worth_remembering(node):
        return _remembered(node, compiled)
    return compiled


# --------------------------------------------------------------------------- shared sub-expressions

MEMO = "b12:memo"  # attribute of the request's merged function table holding remembered values
_PURE_TYPES = frozenset({
    "B12Constant", "TermExpression", "InvocationTerm", "ParenthesizedTerm", "LiteralTerm", "StringLiteral",
    "NumberLiteral", "BooleanLiteral", "NullLiteral", "InvocationExpression", "MemberInvocation",
    "FunctionInvocation", "Functn", "UnionExpression", "InequalityExpression", "AdditiveExpression",
    "MultiplicativeExpression", "EqualityExpression", "OrExpression", "ImpliesExpression", "AndExpression",
    "XorExpression", "MembershipExpression",
})
_OPERATOR_TYPES = frozenset({"UnionExpression", "MembershipExpression", *_OPERATORS})
_structures: dict[str, int] = {}


def _pure(node: Any) -> bool:
    """The value depends only on the focus (see the module docstring)."""
    if not isinstance(node, dict) or node.get("type") not in _PURE_TYPES:
        return False
    if node["type"] == "Functn":
        children = node.get("children") or []
        return len(children) == 1 and _pure(children[0])  # a name, no parameter list
    return all(_pure(child) for child in node.get("children") or [])


def _worth_remembering(node: dict[str, Any]) -> bool:
    # Roots of work: an operator or a call chain; not a bare name, literal or pass-through.
    if node.get("type") not in _OPERATOR_TYPES and node.get("type") != "InvocationExpression":
        return False
    return _pure(node)


def _structure(node: Any) -> str:
    if not isinstance(node, dict):
        return repr(node)
    parts = [str(node.get("type")), repr(node.get("terminalNodeText")), repr(node.get("value")) if node.get("type") == "B12Constant" else ""]
    if node.get("type") in ("Identifier", "B12Constant", "StringLiteral", "NumberLiteral", "BooleanLiteral"):
        parts.append(repr(node.get("text")))
    parts.extend(_structure(child) for child in node.get("children") or [])
    return "(" + " ".join(parts) + ")"


def _remembered(node: dict[str, Any], compiled: Closure) -> Closure:
    structure = _structures.setdefault(_structure(node), len(_structures))
    sets_this = node.get("type") in _OPERATOR_TYPES or any(
        isinstance(n, dict) and n.get("type") in _OPERATOR_TYPES for n in _walk(node))

    def remembered(ctx: dict, data: Any) -> list:
        if type(data) is not list or len(data) != 1 or type(data[0]) is not dict:
            return compiled(ctx, data)
        memo = getattr(ctx.get(MERGED_FUNCTIONS), "memo", None)
        if memo is None:
            return compiled(ctx, data)
        focus = data[0]
        key = (structure, id(focus))
        hit = memo.get(key)
        if hit is not None and hit[0] is focus:
            if sets_this:
                ctx["$this"] = data  # what the operators inside would have done
            return list(hit[1])
        value = compiled(ctx, data)
        memo[key] = (focus, list(value))
        return value

    return remembered


def _walk(node: dict[str, Any]):
    for child in node.get("children") or []:
        if isinstance(child, dict):
            yield child
            yield from _walk(child)


def _interpreted(node: dict[str, Any]) -> Closure:
    do_eval = fp.do_eval
    return lambda ctx, data: do_eval(ctx, data, node)


def _constant(node: dict[str, Any]) -> Closure:
    value = node["value"]
    return lambda ctx, data: list(value)


def _pass_through(node: dict[str, Any]) -> Closure:
    return compile_closure(node["children"][0])


def _literal_term(node: dict[str, Any]) -> Closure:
    term = node["children"][0]
    if term:
        return compile_closure(term)
    text = node["text"]
    return lambda ctx, data: [text]


def _external_constant(node: dict[str, Any]) -> Closure:
    ext_identifier = node["children"][0]["children"][0]
    name = identifier(None, None, ext_identifier)[0].replace("`", "")

    def external_constant(ctx: dict, data: Any) -> list:
        variables = ctx["vars"]
        if name not in variables:
            raise ValueError(f"Attempting to access an undefined environment variable: {name}")
        value = variables[name]
        if value is None:
            return []
        if not isinstance(value, list):
            return [value]
        return value

    return external_constant


def _invocation_expression(node: dict[str, Any]) -> Closure:
    steps = [compile_closure(child) for child in node["children"]]

    def invocation_expression(ctx: dict, data: Any) -> list:
        for step in steps:
            data = step(ctx, data)
        return list(data)

    return invocation_expression


def _name(node: dict[str, Any]) -> list | None:
    """The value of a name node (Identifier, or folded to a constant), evaluated once."""
    if node.get("type") not in ("Identifier", "B12Constant"):
        return None
    return fp.do_eval(dict(_NO_CONTEXT), [], node)


def _member_invocation(node: dict[str, Any]) -> Closure | None:
    name = _name(node["children"][0])
    if not name or not isinstance(name[0], str):
        return None
    key = name[0].replace("`", "")
    capitalized = util.is_capitalized(key)
    reducers: dict[int, tuple[Any, Callable]] = {}

    def member_invocation(ctx: dict, data: Any) -> list:
        model = ctx["model"]
        if isinstance(data, list):
            if capitalized:
                try:
                    filtered = [x for x in data if x["resourceType"] == key]
                    return [nodes.ResourceNode.create_node(x, key) for x in filtered]
                except TypeError:
                    pass
            cached = reducers.get(id(model))
            if cached is None or cached[0] is not model:
                cached = (model, create_reduce_member_invocation(model, key))
                reducers[id(model)] = cached
            return list(reduce(cached[1], data, []))
        return []

    return member_invocation


def _function_invocation(node: dict[str, Any]) -> Closure | None:
    functn = node["children"][0]
    if functn.get("type") != "Functn" or not functn.get("children"):
        return None
    name = _name(functn["children"][0])
    if name is None:
        return None
    fn_name: Any = name
    if isinstance(fn_name, list) and len(fn_name) == 1:
        fn_name = fn_name[0]
    rest = functn["children"][1:]
    raw_params = None
    if rest and isinstance(rest[0], dict) and rest[0].get("type") == "ParamList" and "children" in rest[0]:
        raw_params = rest[0]["children"]
    elif rest:
        return None
    compiled_params = [compile_closure(param) for param in raw_params] if raw_params else []

    def function_invocation(ctx: dict, data: Any) -> list:
        registry = ctx.get(MERGED_FUNCTIONS)
        if registry is None:
            return fp.doInvoke(ctx, name, data, raw_params)
        if not isinstance(fn_name, str) or fn_name not in registry:
            raise Exception("Not implemented: " + str(fn_name))
        invocation = registry[fn_name]

        if "nullable_input" in invocation and util.is_nullable(data):
            return []

        if "variadic" in invocation:
            tp = invocation["variadic"]
            params_list = raw_params if isinstance(raw_params, list) else []
            this_value = ctx["$this"] if "$this" in ctx else ctx["dataRoot"]
            params = [_param(ctx, this_value, tp, params_list[i], compiled_params[i]) for i in range(len(params_list))]
            return util.arraify(invocation["fn"](ctx, util.arraify(data), *params))

        if "arity" not in invocation:
            if raw_params is None or util.is_empty(raw_params):
                return util.arraify(invocation["fn"](ctx, util.arraify(data)))
            raise Exception(fn_name + " expects no params")

        params_raw = raw_params
        params_compiled = compiled_params
        if invocation["fn"].__name__ == "trace_fn" and raw_params is not None:
            params_raw, params_compiled = raw_params[:1], compiled_params[:1]

        params_number = len(params_raw) if isinstance(params_raw, list) else 0
        if params_number not in invocation["arity"]:
            raise Exception(fn_name + " wrong arity: got " + str(params_number))
        arg_types = invocation["arity"][params_number]
        this_value = ctx["$this"] if "$this" in ctx else ctx["dataRoot"]
        params = [ctx, data]
        for i in range(params_number):
            params.append(_param(ctx, this_value, arg_types[i], params_raw[i], params_compiled[i]))
        if "nullable" in invocation and any(util.is_nullable(x) for x in params):
            return []
        return util.arraify(invocation["fn"](*params))

    return function_invocation


def _infix(node: dict[str, Any], op: str) -> Closure:
    raw_params = node["children"]
    compiled_params = [compile_closure(child) for child in raw_params]
    first, second = (compiled_params + [None, None])[:2]
    static: list[Any] = []  # [invocation] of the built-in table, looked up on first use

    def infix(ctx: dict, data: Any) -> list:
        registry = ctx.get(MERGED_FUNCTIONS)
        if registry is None:
            return fp.infix_invoke(ctx, op, data, raw_params)
        invocation = registry.get(op)
        if not static:
            static.append(STATIC_FUNCTIONS.get(op))
        if invocation is not None and invocation is static[0] and len(raw_params) == 2 \
                and invocation["arity"][2] == ["Any", "Any"]:
            # The common case (=, !=, <, <=, in, |, ...), as make_param does it for "Any".
            ctx["$this"] = data
            left = first(ctx, data)
            ctx["$this"] = data
            right = second(ctx, data)
            if "nullable" in invocation and (util.is_nullable(left) or util.is_nullable(right)):
                return []
            return util.arraify(invocation["fn"](ctx, left, right))
        if op not in registry or "fn" not in registry[op]:
            raise Exception("Not implemented " + op)
        invocation = registry[op]
        if len(raw_params) != 2:
            raise Exception("Infix invoke should have arity 2")
        arg_types = invocation["arity"][2]
        if arg_types is None:
            return []
        params = [ctx,
                  _param(ctx, data, arg_types[0], raw_params[0], compiled_params[0]),
                  _param(ctx, data, arg_types[1], raw_params[1], compiled_params[1])]
        if "nullable" in invocation and any(util.is_nullable(x) for x in params):
            return []
        return util.arraify(invocation["fn"](*params))

    return infix


def _operator(node: dict[str, Any]) -> Closure | None:
    aliases = _OPERATORS[node["type"]]
    text = node.get("terminalNodeText") or []
    if not text:
        return None
    op = text[0]
    if aliases is not None:
        if op not in aliases:
            return None  # fhirpathpy raises at evaluation time; keep that
        op = aliases[op]
    return _infix(node, op)


def _union(node: dict[str, Any]) -> Closure:
    return _infix(node, "|")


def _param(ctx: dict, parent_data: Any, node_type: Any, param: dict[str, Any], compiled: Closure) -> Any:
    """fhirpathpy 2.2.4 ``engine.make_param``, evaluating the parameter with its closure."""
    if node_type == "Expr":
        def func(data: Any) -> list:
            ctx["$this"] = util.arraify(data)
            return compiled(ctx, ctx["$this"])

        return func

    if node_type == "AnyAtRoot":
        ctx["$this"] = ctx["$this"] if "$this" in ctx else ctx["dataRoot"]
        return compiled(ctx, ctx["$this"])

    if node_type == "Identifier":
        if param["type"] == "TermExpression":
            return param["text"]
        raise Exception("Expected identifier node, got " + json.dumps(param))

    if node_type == "TypeSpecifier":
        return fp.type_specifier(ctx, parent_data, param)

    ctx["$this"] = parent_data
    res = compiled(ctx, parent_data)

    if node_type == "Any":
        return res

    if isinstance(node_type, list):
        if len(res) == 0:
            return []
        node_type = node_type[0]

    if len(res) > 1:
        raise Exception("Unexpected collection" + json.dumps(res) + "; expected singleton of type " + node_type)
    if len(res) == 0:
        return []
    if node_type not in fp.param_check_table:
        raise Exception("Implement me for " + node_type)
    return fp.param_check_table[node_type](res[0])


_HANDLERS: dict[str, Callable[[dict[str, Any]], Closure | None]] = {
    "B12Constant": _constant,
    "TermExpression": _pass_through,
    "InvocationTerm": _pass_through,
    "ParenthesizedTerm": _pass_through,
    "LiteralTerm": _literal_term,
    "ExternalConstantTerm": _external_constant,
    "InvocationExpression": _invocation_expression,
    "MemberInvocation": _member_invocation,
    "FunctionInvocation": _function_invocation,
    "UnionExpression": _union,
    **{name: _operator for name in _OPERATORS},
}
