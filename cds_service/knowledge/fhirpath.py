"""FHIRPath compilation and evaluation on top of fhirpathpy.

fhirpathpy's own ``compile`` copies the variables into a plain dict and reads the host
clock for ``now()``/``today()``. We need two things it cannot give: variables that are
computed lazily (a shared definition is only evaluated when a condition reads it, and
only once per request) and a clock that is an input of the evaluation (the engine is
pure). So we parse once with fhirpathpy and drive its evaluator with our own context.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from antlr4 import CommonTokenStream, InputStream, Token
from antlr4.error.ErrorListener import ErrorListener
from antlr4.tree.Tree import ParseTreeWalker
from fhirpathpy.engine import do_eval
from fhirpathpy.engine.nodes import FP_Type, ResourceNode
from fhirpathpy.engine.util import arraify, get_data
from fhirpathpy.models import models
from fhirpathpy.parser.ASTPathListener import ASTPathListener
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

R4_MODEL = models["r4"]

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
        }
        result = do_eval(ctx, data_root, self._parsed["children"][0])
        return _drop_primitive_extension_nodes(arraify(result))


class _RaisingErrorListener(ErrorListener):
    def syntaxError(self, recognizer, offendingSymbol, line, column, msg, e):  # noqa: N802 (ANTLR API)
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
    return CompiledExpression(source=source, _parsed=ast.parentStack[0])


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
