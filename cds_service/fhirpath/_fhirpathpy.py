"""Every fhirpathpy name this package uses, in one place, typed (fhirpathpy ships no types).

All are read, never assigned: fhirpathpy's module globals stay as they are
(tests/knowledge/test_fhirpath_unpatched.py). fhirpathpy is pinned exactly (pyproject.toml)
because ``_closures`` does what its 2.2.4 evaluator does; the equivalence test
(tests/knowledge/test_fhirpath_equivalence.py) says whether a new version still agrees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from fhirpathpy import engine as _engine
from fhirpathpy.engine import nodes as _nodes
from fhirpathpy.engine import util as _util
from fhirpathpy.engine.evaluators import (
    create_reduce_member_invocation as _create_reduce_member_invocation,
)
from fhirpathpy.engine.evaluators import identifier as _identifier
from fhirpathpy.engine.invocations import existence as _existence
from fhirpathpy.engine.invocations import invocation_registry as _invocation_registry
from fhirpathpy.models import models as _models
from fhirpathpy.parser.ASTPathListener import ASTPathListener as _ASTPathListener
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer as _FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser as _FHIRPathParser

R4_MODEL: Mapping[str, Any] = _models["r4"]
# The built-in functions and operators: name -> {"fn", "arity", "nullable", ...}. Read only.
INVOCATIONS: Mapping[str, dict[str, Any]] = cast("Mapping[str, dict[str, Any]]", _invocation_registry)

# Evaluation (fhirpathpy.engine): the evaluator of any node, and the parameter helpers doInvoke uses.
do_eval: Callable[[dict[str, Any], Any, dict[str, Any]], Any] = _engine.do_eval
type_specifier: Callable[[dict[str, Any], Any, dict[str, Any]], Any] = _engine.type_specifier
param_check_table: Mapping[str, Callable[[Any], Any]] = _engine.param_check_table
identifier: Callable[[Any, Any, dict[str, Any]], list[Any]] = _identifier
create_reduce_member_invocation: Callable[[Any, str], Callable[[list[Any], Any], list[Any]]] = (
    _create_reduce_member_invocation
)

# Collections and items (fhirpathpy.engine.util / nodes).
arraify: Callable[[Any], list[Any]] = _util.arraify
get_data: Callable[[Any], Any] = _util.get_data
is_capitalized: Callable[[str], bool] = _util.is_capitalized
is_empty: Callable[[Any], bool] = _util.is_empty
is_nullable: Callable[[Any], bool] = _util.is_nullable
uniq: Callable[[list[Any]], list[Any]] = _util.uniq
process_user_invocation_table: Callable[[Mapping[str, dict[str, Any]]], dict[str, dict[str, Any]]] = (
    _util.process_user_invocation_table
)
distinct_fn: Callable[[Any, list[Any]], list[Any]] = _existence.distinct_fn
ResourceNode: Any = _nodes.ResourceNode
FP_Type: Any = _nodes.FP_Type
FP_Quantity: Any = _nodes.FP_Quantity
FP_DateTime: Any = _nodes.FP_DateTime

# Parsing (fhirpathpy.parser): the generated ANTLR lexer and parser, and the AST builder.
FHIRPathLexer: Any = _FHIRPathLexer
FHIRPathParser: Any = _FHIRPathParser
ASTPathListener: Any = _ASTPathListener
