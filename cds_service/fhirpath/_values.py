"""Evaluated FHIRPath items as plain Python data, and the engine's truth and text rules."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ._fhirpathpy import FP_DateTime, FP_Quantity, FP_Type, ResourceNode, get_data

# The data of one evaluated item (a node's JSON; a float read as Decimal, as fhirpathpy does).
# fhirpathpy's own function, not a wrapper: the custom functions call it for every item.
data_of: Callable[[Any], Any] = get_data


def typed_node(data: Any, fhir_type: str) -> Any:
    """Data with a FHIR type attached, for a custom function whose result is not a resource
    (``ofType()``, choice elements and quantities need the type)."""
    return ResourceNode.create_node(data, fhir_type)


def datetime_text(iso: str) -> str:
    """An ISO date/dateTime as FHIRPath writes it (what fhirpathpy's ``now()`` returns)."""
    return str(FP_DateTime(iso))


def quantity_literal(value: Any) -> tuple[Any, str] | None:
    """(value, unit) of a FHIRPath quantity (``5 'mg'``); None for anything else (a Quantity
    element is plain JSON data)."""
    if isinstance(value, FP_Quantity):
        return value.value, str(value.unit).strip("'")
    return None


def plain(value: Any) -> Any:
    """Turn an evaluated item into JSON-like Python data (FHIRPath types kept as strings)."""
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


def drop_primitive_extension_nodes(values: list[Any]) -> list[Any]:
    # fhirpathpy represents `_field` primitive extensions as dict nodes with only an
    # "extension" key; they are not values of the expression (its returnRawData drops them too).
    kept = []
    for value in values:
        if isinstance(value, ResourceNode) and isinstance(value.data, dict) and list(value.data) == ["extension"]:
            continue
        kept.append(value)
    return kept  # always a new list: the caller may keep or change it
