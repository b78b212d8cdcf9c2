"""A FHIRPath expression compiled once: strict parse, constants folded, closures built."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _parse
from ._closures import Closure, compile_tree, context
from ._fhirpathpy import arraify
from ._functions import FunctionSpec, FunctionTable, merge_functions
from ._parse import Node
from ._values import drop_primitive_extension_nodes


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """A FHIRPath expression parsed and compiled once (at knowledge load)."""

    source: str
    tree: Node = field(repr=False, compare=False)  # fhirpathpy's AST of the expression (read-only)
    _run: Closure = field(repr=False, compare=False)
    # The operands of a top-level ``and`` chain (``A and B and C`` -> A, B, C); empty when there is none.
    conjuncts: tuple[CompiledExpression, ...] = field(default=(), repr=False, compare=False)

    def evaluate(
        self,
        root: Any,
        variables: Mapping[str, Any],
        functions: FunctionTable | Mapping[str, FunctionSpec],
    ) -> list[Any]:
        """Evaluate and return the items as fhirpathpy returns them with ``returnRawData``.

        Items keep their FHIR type, so a variable holding ``%obs.value`` can still be filtered
        with ``ofType(Quantity)`` by a later expression. ``variables`` may be any mapping (read
        lazily). ``functions``: a ``FunctionTable`` (``merge_functions``, once per request), or
        the custom functions, merged for this one call.
        """
        table = functions if isinstance(functions, FunctionTable) else merge_functions(functions)
        data_root = arraify(root)
        return drop_primitive_extension_nodes(arraify(self._run(context(data_root, variables, table), data_root)))

    def member_names(self) -> frozenset[str]:
        """Every element name the expression navigates (``code``, ``coding``, ``value`` ...)."""
        return _parse.member_names(self.tree)

    def variable_names(self) -> list[str]:
        """Every ``%variable`` it reads, in source order."""
        return _parse.variable_names(self.tree)

    def function_names(self) -> list[str]:
        """Every function it calls, in source order."""
        return _parse.function_names(self.tree)


def compile_expression(source: str) -> CompiledExpression:
    """Parse once. Unlike fhirpathpy.parse, a syntax error (or trailing junk) is an error:
    fhirpathpy's parser recovers silently and would run a different expression."""
    tree = _parse.parse_strict(source)
    body = tree["children"][0]
    constants = _parse.constant_values(body)
    parts = _parse.and_operands(body)
    conjuncts = tuple(
        CompiledExpression(
            source=f"{source} (operand {index + 1} of and)",
            tree={"children": [part]},
            _run=compile_tree(part, constants),
        )
        for index, part in enumerate(parts)
    ) if len(parts) > 1 else ()
    return CompiledExpression(source=source, tree=tree, _run=compile_tree(body, constants), conjuncts=conjuncts)
