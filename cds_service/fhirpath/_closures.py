"""fhirpathpy's evaluator with the tree walk done once: an AST becomes nested closures.

fhirpathpy evaluates an expression by walking its parse tree on every call: ``do_eval`` looks up
an evaluator by node type for every node, pass-through nodes (``TermExpression``,
``InvocationTerm``, ``ParenthesizedTerm``) cost a call each, and every function call re-evaluates
the function's name node, re-reads its parameter list and merges the built-in function table
with the user's. Inside a ``where()`` that happens for every resource. Here each node is turned,
once, into a closure ``f(ctx, focus) -> list`` that does what fhirpathpy 2.2.4's evaluator does
for that node (same invocation functions, same parameter checks, same ``$this``/``$index``
handling, same exceptions), with the walk already done and functions looked up in the
request's merged ``FunctionTable``. Node types not handled here are evaluated by fhirpathpy's
own public ``do_eval`` on the untouched sub-tree (with the custom functions in the context, as
fhirpathpy's ``evaluate`` puts them). fhirpathpy itself is only read, never modified.

**Constants.** Literal sub-trees (strings, numbers, booleans, ``{}``, unions or parentheses of
them) and member/function names are evaluated once at compile time (``_parse.constant_values``):
``status in ('final' | 'amended' | 'corrected')`` no longer re-parses three literals and
de-duplicates their union for every resource a ``where()`` visits.

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

``tests/knowledge/test_fhirpath_equivalence.py`` checks every expression of the knowledge
against plain fhirpathpy on every fixture.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import reduce
from typing import Any, cast

from . import _fhirpathpy as fp
from ._functions import STATIC_FUNCTIONS, FunctionTable
from ._parse import Node, constant_values

Context = dict[str, Any]  # fhirpathpy's evaluation context (its invocation functions read and set keys)
Closure = Callable[[Context, Any], list[Any]]

_TABLE = "cds_service.fhirpath:functions"  # the context key of the request's FunctionTable (this module only)
_NO_CONTEXT: Context = {"dataRoot": [], "vars": {}, "userInvocationTable": {}}

_OPERATORS: dict[str, dict[str, str] | None] = {
    "InequalityExpression": None, "AdditiveExpression": None, "MultiplicativeExpression": None,
    "EqualityExpression": None, "OrExpression": None, "ImpliesExpression": None, "AndExpression": None,
    "XorExpression": None,
    "MembershipExpression": {"contains": "containsOp", "in": "inOp"},
    "TypeExpression": {"is": "isOp", "as": "asOp"},
}


def context(root: list[Any], variables: Any, table: FunctionTable) -> Context:
    """fhirpathpy's evaluation context for ``root`` (already a list), plus the merged table."""
    return {
        "dataRoot": root,
        "vars": variables,
        "model": fp.R4_MODEL,
        "userInvocationTable": table.user,  # what fhirpathpy's own evaluator (fallback sub-trees) reads
        _TABLE: table,
    }


def compile_tree(node: Node, constants: dict[int, tuple[Any, ...]] | None = None) -> Closure:
    """The closure for ``node``; ``constants`` from ``_parse.constant_values`` of its root."""
    return _Compiler(constant_values(node) if constants is None else constants).compile(node)


# --------------------------------------------------------------------------- shared sub-expressions

_PURE_TYPES = frozenset({
    "TermExpression", "InvocationTerm", "ParenthesizedTerm", "LiteralTerm", "StringLiteral",
    "NumberLiteral", "BooleanLiteral", "NullLiteral", "InvocationExpression", "MemberInvocation",
    "FunctionInvocation", "Functn", "UnionExpression", "InequalityExpression", "AdditiveExpression",
    "MultiplicativeExpression", "EqualityExpression", "OrExpression", "ImpliesExpression", "AndExpression",
    "XorExpression", "MembershipExpression", "Identifier",
})
_OPERATOR_TYPES = frozenset({"UnionExpression", "MembershipExpression", *_OPERATORS})
_structures: dict[str, int] = {}  # a sub-expression's structure -> a small key, shared by all expressions


def _walk(node: Node) -> Iterator[Node]:
    for child in node.get("children") or []:
        if isinstance(child, dict):
            yield child
            yield from _walk(child)


def _structure(node: Any) -> str:
    if not isinstance(node, dict):
        return repr(node)
    parts = [str(node.get("type")), repr(node.get("terminalNodeText"))]
    if node.get("type") in ("Identifier", "StringLiteral", "NumberLiteral", "BooleanLiteral"):
        parts.append(repr(node.get("text")))
    parts.extend(_structure(child) for child in node.get("children") or [])
    return "(" + " ".join(parts) + ")"


class _Compiler:
    def __init__(self, constants: dict[int, tuple[Any, ...]]) -> None:
        self.constants = constants

    def compile(self, node: Node) -> Closure:
        if id(node) in self.constants:
            compiled: Closure | None = _constant(self.constants[id(node)])
        else:
            handler = _HANDLERS.get(str(node.get("type")))
            compiled = handler(self, node) if handler is not None else None
        if compiled is None:
            compiled = _interpreted(node)
        if self._worth_remembering(node):
            return _remembered(node, compiled)
        return compiled

    def _pure(self, node: Any) -> bool:
        """The value depends only on the focus (see the module docstring)."""
        if not isinstance(node, dict):
            return False
        if id(node) in self.constants:
            return True
        if node.get("type") not in _PURE_TYPES:
            return False
        if node["type"] == "Functn":
            children = node.get("children") or []
            return len(children) == 1 and self._pure(children[0])  # a name, no parameter list
        return all(self._pure(child) for child in node.get("children") or [])

    def _worth_remembering(self, node: Node) -> bool:
        # Roots of work: an operator or a call chain; not a bare name, literal or pass-through.
        if node.get("type") not in _OPERATOR_TYPES and node.get("type") != "InvocationExpression":
            return False
        return id(node) not in self.constants and self._pure(node)

    def name(self, node: Node) -> list[Any] | None:
        """The value of a name node (an Identifier), evaluated once."""
        if id(node) in self.constants:
            return list(self.constants[id(node)])
        if node.get("type") != "Identifier":
            return None
        return list(fp.do_eval(dict(_NO_CONTEXT), [], node))


def _remembered(node: Node, compiled: Closure) -> Closure:
    structure = _structures.setdefault(_structure(node), len(_structures))
    sets_this = node.get("type") in _OPERATOR_TYPES or any(n.get("type") in _OPERATOR_TYPES for n in _walk(node))

    def remembered(ctx: Context, data: Any) -> list[Any]:
        if type(data) is not list or len(data) != 1 or type(data[0]) is not dict:
            return compiled(ctx, data)
        memo = ctx[_TABLE].memo
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


def _constant(value: tuple[Any, ...]) -> Closure:
    return lambda ctx, data: list(value)  # a new list each time: callers may change it


def _interpreted(node: Node) -> Closure:
    do_eval = fp.do_eval
    return lambda ctx, data: cast("list[Any]", do_eval(ctx, data, node))  # as fhirpathpy returns it


def _pass_through(compiler: _Compiler, node: Node) -> Closure:
    return compiler.compile(node["children"][0])


def _literal_term(compiler: _Compiler, node: Node) -> Closure:
    term = node["children"][0]
    if term:
        return compiler.compile(term)
    text = node["text"]
    return lambda ctx, data: [text]


def _external_constant(compiler: _Compiler, node: Node) -> Closure | None:
    children = node["children"][0].get("children") or []
    if not children:
        return None  # %'name': left to fhirpathpy
    name = fp.identifier(None, None, children[0])[0].replace("`", "")

    def external_constant(ctx: Context, data: Any) -> list[Any]:
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


def _invocation_expression(compiler: _Compiler, node: Node) -> Closure:
    steps = [compiler.compile(child) for child in node["children"]]

    def invocation_expression(ctx: Context, data: Any) -> list[Any]:
        for step in steps:
            data = step(ctx, data)
        return list(data)

    return invocation_expression


def _member_invocation(compiler: _Compiler, node: Node) -> Closure | None:
    name = compiler.name(node["children"][0])
    if not name or not isinstance(name[0], str):
        return None
    key = name[0].replace("`", "")
    capitalized = fp.is_capitalized(key)
    reducers: dict[int, tuple[Any, Callable[..., Any]]] = {}

    def member_invocation(ctx: Context, data: Any) -> list[Any]:
        model = ctx["model"]
        if isinstance(data, list):
            if capitalized:
                try:
                    filtered = [x for x in data if x["resourceType"] == key]
                    return [fp.ResourceNode.create_node(x, key) for x in filtered]
                except TypeError:
                    pass
            cached = reducers.get(id(model))
            if cached is None or cached[0] is not model:
                cached = (model, fp.create_reduce_member_invocation(model, key))
                reducers[id(model)] = cached
            return list(reduce(cached[1], data, []))
        return []

    return member_invocation


def _function_invocation(compiler: _Compiler, node: Node) -> Closure | None:
    functn = node["children"][0]
    if functn.get("type") != "Functn" or not functn.get("children"):
        return None
    name = compiler.name(functn["children"][0])
    if name is None:
        return None
    fn_name: Any = name[0] if len(name) == 1 else name
    rest = functn["children"][1:]
    raw_params: list[Node] | None = None
    if rest and isinstance(rest[0], dict) and rest[0].get("type") == "ParamList" and "children" in rest[0]:
        raw_params = rest[0]["children"]
    elif rest:
        return None
    compiled_params = [compiler.compile(param) for param in raw_params] if raw_params else []

    def function_invocation(ctx: Context, data: Any) -> list[Any]:
        # fhirpathpy 2.2.4 engine.doInvoke, with the table merged once and parameters compiled.
        registry = ctx[_TABLE]
        if not isinstance(fn_name, str) or fn_name not in registry:
            raise Exception("Not implemented: " + str(fn_name))  # fhirpathpy's exception and message
        invocation = registry[fn_name]

        if "nullable_input" in invocation and fp.is_nullable(data):
            return []

        if "variadic" in invocation:
            tp = invocation["variadic"]
            params_list = raw_params if isinstance(raw_params, list) else []
            this_value = ctx["$this"] if "$this" in ctx else ctx["dataRoot"]
            params = [_param(ctx, this_value, tp, params_list[i], compiled_params[i]) for i in range(len(params_list))]
            return list(fp.arraify(invocation["fn"](ctx, fp.arraify(data), *params)))

        if "arity" not in invocation:
            if raw_params is None or fp.is_empty(raw_params):
                return list(fp.arraify(invocation["fn"](ctx, fp.arraify(data))))
            raise Exception(fn_name + " expects no params")  # fhirpathpy's exception and message

        params_raw = raw_params
        params_compiled = compiled_params
        if invocation["fn"].__name__ == "trace_fn" and raw_params is not None:
            params_raw, params_compiled = raw_params[:1], compiled_params[:1]

        params_number = len(params_raw) if isinstance(params_raw, list) else 0
        if params_number not in invocation["arity"]:
            raise Exception(fn_name + " wrong arity: got " + str(params_number))  # fhirpathpy's exception and message
        arg_types = invocation["arity"][params_number]
        this_value = ctx["$this"] if "$this" in ctx else ctx["dataRoot"]
        args: list[Any] = [ctx, data]
        for i in range(params_number):
            assert params_raw is not None  # params_number > 0
            args.append(_param(ctx, this_value, arg_types[i], params_raw[i], params_compiled[i]))
        if "nullable" in invocation and any(fp.is_nullable(x) for x in args):
            return []
        return list(fp.arraify(invocation["fn"](*args)))

    return function_invocation


def _infix(compiler: _Compiler, node: Node, op: str) -> Closure:
    raw_params: list[Node] = node["children"]
    compiled_params = [compiler.compile(child) for child in raw_params]
    first, second = [*compiled_params, _interpreted(node), _interpreted(node)][:2]  # the fast path needs two operands
    static: Any = STATIC_FUNCTIONS.get(op)  # None for an operator fhirpathpy lacks

    def infix(ctx: Context, data: Any) -> list[Any]:
        # fhirpathpy 2.2.4 engine.infix_invoke, with the table merged once and parameters compiled.
        registry = ctx[_TABLE]
        invocation: Any = registry.get(op)
        if invocation is not None and invocation is static and len(raw_params) == 2 \
                and invocation["arity"][2] == ["Any", "Any"]:
            # The common case (=, !=, <, <=, in, |, ...), as make_param does it for "Any".
            ctx["$this"] = data
            left = first(ctx, data)
            ctx["$this"] = data
            right = second(ctx, data)
            if "nullable" in invocation and (fp.is_nullable(left) or fp.is_nullable(right)):
                return []
            return list(fp.arraify(invocation["fn"](ctx, left, right)))
        if invocation is None or "fn" not in invocation:
            raise Exception("Not implemented " + op)  # fhirpathpy's exception and message
        if len(raw_params) != 2:
            raise Exception("Infix invoke should have arity 2")  # fhirpathpy's exception and message
        arg_types = invocation["arity"][2]
        if arg_types is None:
            return []
        params = [ctx,
                  _param(ctx, data, arg_types[0], raw_params[0], compiled_params[0]),
                  _param(ctx, data, arg_types[1], raw_params[1], compiled_params[1])]
        if "nullable" in invocation and any(fp.is_nullable(x) for x in params):
            return []
        return list(fp.arraify(invocation["fn"](*params)))

    return infix


def _operator(compiler: _Compiler, node: Node) -> Closure | None:
    aliases = _OPERATORS[node["type"]]
    text = node.get("terminalNodeText") or []
    if not text:
        return None
    op = text[0]
    if aliases is not None:
        if op not in aliases:
            return None  # fhirpathpy raises at evaluation time; keep that
        op = aliases[op]
    return _infix(compiler, node, op)


def _union(compiler: _Compiler, node: Node) -> Closure:
    return _infix(compiler, node, "|")


def _param(ctx: Context, parent_data: Any, node_type: Any, param: Node, compiled: Closure) -> Any:
    """fhirpathpy 2.2.4 ``engine.make_param``, evaluating the parameter with its closure."""
    if node_type == "Expr":
        def func(data: Any) -> list[Any]:
            ctx["$this"] = fp.arraify(data)
            return compiled(ctx, ctx["$this"])

        return func

    if node_type == "AnyAtRoot":
        ctx["$this"] = ctx["$this"] if "$this" in ctx else ctx["dataRoot"]
        return compiled(ctx, ctx["$this"])

    if node_type == "Identifier":
        if param["type"] == "TermExpression":
            return param["text"]
        raise Exception("Expected identifier node, got " + json.dumps(param))  # fhirpathpy's exception and message

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
        raise Exception("Unexpected collection" + json.dumps(res) + "; expected singleton of type " + node_type)  # fhirpathpy's exception and message
    if len(res) == 0:
        return []
    if node_type not in fp.param_check_table:
        raise Exception("Implement me for " + node_type)  # fhirpathpy's exception and message
    return fp.param_check_table[node_type](res[0])


_HANDLERS: dict[str, Callable[[_Compiler, Node], Closure | None]] = {
    "TermExpression": _pass_through,
    "InvocationTerm": _pass_through,
    "ParenthesizedTerm": _pass_through,
    "LiteralTerm": _literal_term,
    "ExternalConstantTerm": _external_constant,
    "InvocationExpression": _invocation_expression,
    "MemberInvocation": _member_invocation,
    "FunctionInvocation": _function_invocation,
    "UnionExpression": _union,
    **dict.fromkeys(_OPERATORS, _operator),
}
