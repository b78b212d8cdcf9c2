"""Human-readable "why did (or didn't) this fire" from the engine's traces."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

from ..fhir.reader import ReadProblem
from .engine import ExpressionTrace, RecommendationTrace

_MAX_VALUE = 160


def format_traces(traces: list[RecommendationTrace]) -> str:
    lines: list[str] = []
    for trace in traces:
        fired = [card.card_id for card in trace.cards if card.fired and not card.suppressed_by]
        lines.append(f"== {trace.recommendation_id}: {'FIRED ' + ', '.join(fired) if fired else 'did not fire'}")
        for card in trace.cards:
            if not card.applies_to_hook:
                lines.append(f"  - {card.card_id}: not for this hook")
                continue
            status = "fired" if card.fired else "not fired"
            if card.suppressed_by:
                status += f" (suppressed: {card.suppressed_by} is more urgent)"
            lines.append(f"  - {card.card_id}: {status}")
            for condition in card.conditions:
                lines.append(f"      {condition.name} = {_value(condition)}    <- {condition.source}")
        if trace.variables:
            lines.append("  named expressions:")
            for name, variable in trace.variables.items():
                lines.append(f"      %{name} = {_value(variable)}")
    return "\n".join(lines)


def format_unreadable(problems: Sequence[ReadProblem], orders: Sequence[Mapping[str, Any]] = ()) -> str:
    """What the reader could not read, and the draft orders that could not be checked."""
    if not problems and not orders:
        return "== unreadable: nothing (every resource and element the knowledge reads was read)"
    lines = [f"== unreadable: {len(problems)} element(s) or resource(s), left out of the decision"]
    lines += [f"  - {problem.describe()}" for problem in problems]
    for order in orders:
        lines.append(f"  ! order {order.get('order')} could not be checked: {order.get('reason')}")
    return "\n".join(lines)


def _value(trace: ExpressionTrace) -> str:
    if trace.error:
        return f"ERROR {trace.error}"
    text = _short(trace.value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def _short(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(item, dict) and "resourceType" in item for item in value) and value:
        return "[" + ", ".join(f"{item['resourceType']}/{item.get('id', '?')}" for item in value) + "]"
    return orjson.dumps(value, default=_number_or_text).decode()


def _number_or_text(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(round(value, 4))
    return str(value)
