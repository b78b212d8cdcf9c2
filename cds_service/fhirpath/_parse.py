"""Strict parsing to fhirpathpy's AST, and what can be read from the tree without evaluating.

fhirpathpy's ``parse`` lets ANTLR recover from syntax errors silently (``a b`` runs as ``a``);
here any syntax error, or trailing input, is an error. The tree is fhirpathpy's own (its
``ASTPathListener``), so fhirpathpy can evaluate it unchanged; nothing here mutates it.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from antlr4 import CommonTokenStream, InputStream, Token  # type: ignore[import-untyped]
from antlr4.error.ErrorListener import ErrorListener  # type: ignore[import-untyped]
from antlr4.tree.Tree import ParseTreeWalker  # type: ignore[import-untyped]

from ._fhirpathpy import (
    R4_MODEL,
    ASTPathListener,
    FHIRPathLexer,
    FHIRPathParser,
    do_eval,
)

Node = dict[str, Any]  # a node of fhirpathpy's AST: {"type", "children", "text", "terminalNodeText"}


class FhirPathSyntaxError(ValueError):
    """An expression that does not parse; the message quotes the expression."""


class _RaisingErrorListener(ErrorListener):  # type: ignore[misc]  # antlr4 is untyped
    def syntaxError(self, recognizer: Any, offendingSymbol: Any, line: int, column: int, msg: str, e: Any) -> None:
        raise FhirPathSyntaxError(f"column {column + 1}: {msg}")


def parse_strict(source: str) -> Node:
    """The root node (``{"children": [expression]}``) of ``source``; FhirPathSyntaxError otherwise."""
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
    except Exception as exc:  # noqa: BLE001 (ANTLR and the AST listener raise plain exceptions)
        raise FhirPathSyntaxError(f"cannot parse FHIRPath {source!r}: {type(exc).__name__}") from None
    root: Node = ast.parentStack[0]
    return root


def walk(node: Node) -> Iterator[Node]:
    """Every node below and including ``node``."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(child for child in reversed(current.get("children") or []) if isinstance(child, dict))


def member_names(root: Node) -> frozenset[str]:
    """Every element name the expression navigates (``code``, ``coding``, ``value`` ...)."""
    names: set[str] = set()
    for node in walk(root):
        children = node.get("children") or []
        if node.get("type") == "MemberInvocation" and children and isinstance(children[0].get("text"), str):
            names.add(children[0]["text"])
    return frozenset(names)


def variable_names(root: Node) -> list[str]:
    """Every ``%name`` the expression reads, in source order (``%`vs-x``` -> ``vs-x``)."""
    names: list[str] = []
    for node in walk(root):
        if node.get("type") != "ExternalConstant":
            continue
        children = node.get("children") or []
        if children and isinstance(children[0].get("text"), str):
            names.append(children[0]["text"].strip("`"))
        else:  # %'name': the name is the string token
            text = node.get("terminalNodeText") or []
            if len(text) > 1:
                names.append(text[1].strip("'"))
    return names


def function_names(root: Node) -> list[str]:
    """Every function the expression calls (``x.where(...)`` -> ``where``), in source order."""
    names: list[str] = []
    for node in walk(root):
        children = node.get("children") or []
        if node.get("type") == "Functn" and children and isinstance(children[0].get("text"), str):
            names.append(children[0]["text"].strip("`"))
    return names


def and_operands(node: Node) -> list[Node]:
    """``A and B and C`` -> [A, B, C]; any other expression -> [itself]."""
    children = node.get("children") or []
    if node.get("type") == "AndExpression" and len(children) == 2:
        return and_operands(children[0]) + and_operands(children[1])
    return [node]


# --------------------------------------------------------------------------- constant folding

# Node types whose value never depends on the input, the variables or the context.
_CONSTANT_TYPES = frozenset({
    "LiteralTerm", "StringLiteral", "NumberLiteral", "BooleanLiteral", "NullLiteral",
    "UnionExpression", "ParenthesizedTerm", "TermExpression", "Identifier",
})
_FOLD_CONTEXT: dict[str, Any] = {"dataRoot": [], "vars": {}, "model": R4_MODEL, "userInvocationTable": {}}


def constant_values(root: Node) -> dict[int, tuple[Any, ...]]:
    """The value of each maximal constant sub-tree (literals, names, unions of literals), by
    ``id(node)``, computed once by fhirpathpy itself. The tree is left as it is: the compiled
    closures look a node up here, and anything fhirpathpy evaluates still sees its own nodes."""
    values: dict[int, tuple[Any, ...]] = {}
    _fold(root, values)
    return values


def _fold(node: Node, values: dict[int, tuple[Any, ...]]) -> bool:
    """Record the maximal constant sub-trees below ``node``; True if ``node`` itself is constant."""
    children = node.get("children") or []
    constant_children = [_fold(child, values) if isinstance(child, dict) else False for child in children]
    constant = node.get("type") in _CONSTANT_TYPES and all(constant_children)
    if not constant:
        for child, child_constant in zip(children, constant_children, strict=True):
            if child_constant:
                _record(child, values)
    return constant


def _record(node: Node, values: dict[int, tuple[Any, ...]]) -> None:
    try:
        value = do_eval(dict(_FOLD_CONTEXT), [], node)
    except Exception:  # noqa: BLE001 (left to fail, or not, at evaluation time as fhirpathpy would)
        return
    if isinstance(value, list) and all(isinstance(item, (str, int, Decimal, bool)) for item in value):
        values[id(node)] = tuple(value)
