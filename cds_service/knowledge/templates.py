"""Card text templates: markdown with embedded FHIRPath in ``{{ }}``.

The ``{{expression}}`` syntax is the one FHIR already uses to embed FHIRPath in text
(x-fhir-query). A line is kept only when every expression on it has a value, so a
detail can list "B12 ... on ... (N days ago)" and the line simply disappears for a
patient without that result.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..fhirpath import FhirPathSyntaxError, compile_expression
from .model import Expression, Template, TextPart

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


class TemplateError(ValueError):
    pass


def parse_template(text: str, location: str) -> Template:
    lines: list[tuple[TextPart, ...]] = []
    for line_number, line in enumerate(text.split("\n")):
        parts: list[TextPart] = []
        position = 0
        for match in _PLACEHOLDER.finditer(line):
            if match.start() > position:
                parts.append(TextPart(literal=line[position:match.start()]))
            source = match.group(1).strip()
            where = f"{location} (line {line_number + 1})"
            try:
                compiled = compile_expression(source)
            except FhirPathSyntaxError as exc:
                raise TemplateError(f"{where}: {exc}") from None
            parts.append(TextPart(expression=Expression(name=None, compiled=compiled, location=where)))
            position = match.end()
        rest = line[position:]
        if "{{" in rest or "}}" in rest:
            raise TemplateError(f"{location} (line {line_number + 1}): unbalanced '{{{{' or '}}}}' in {line!r}")
        if rest:
            parts.append(TextPart(literal=rest))
        lines.append(tuple(parts))
    return Template(source=text, lines=tuple(lines))


def template_expressions(template: Template) -> list[Expression]:
    return [part.expression for line in template.lines for part in line if part.expression is not None]


def static_text(template: Template) -> str:
    """The template with every expression removed: a lower bound of its rendered length."""
    return "\n".join("".join(part.literal or "" for part in line) for line in template.lines)


def render_template(template: Template, evaluate: Callable[[Expression], list[str]]) -> str:
    """Render with ``evaluate`` returning the formatted items of an expression."""
    rendered: list[str] = []
    for line in template.lines:
        pieces: list[str] = []
        for part in line:
            if part.expression is None:
                pieces.append(part.literal or "")
                continue
            values = evaluate(part.expression)
            if not values:
                break
            pieces.append(", ".join(values))
        else:
            rendered.append("".join(pieces))
    text = "\n".join(rendered)
    # Dropped lines can leave runs of blank lines; markdown needs at most one.
    return re.sub(r"\n{3,}", "\n\n", text).strip()
