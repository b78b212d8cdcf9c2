"""Daily dose from a FHIR R4 dosageInstruction: dose x frequency / period.

Generic arithmetic only (no drug or limit lives here). A dose given in units of product
("1 capsule") is converted with the product strength read from its RxNorm name
("pregabalin 300 MG Oral Capsule"). Anything that cannot be computed is unknown (None),
never zero: a rule must not read "no dose" as "a small dose".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from .units import convert_quantity

# The FHIR elements this module reads from a MedicationRequest (the resource reader reads these).
ELEMENTS_READ = frozenset({
    "dosageInstruction", "timing", "repeat", "frequency", "frequencyMax", "period", "periodUnit", "code", "coding",
    "doseAndRate", "doseQuantity", "doseRange", "high", "value", "unit",
})

_PERIOD_DAYS = {
    "s": Decimal(1) / 86400, "min": Decimal(1) / 1440, "h": Decimal(1) / 24,
    "d": Decimal(1), "wk": Decimal(7), "mo": Decimal("30.4375"), "a": Decimal("365.25"),
}
# HL7 v3 GTSAbbreviation timing codes -> administrations per day.
_TIMING_CODES = {
    "QD": 1, "AM": 1, "PM": 1, "BED": 1, "BID": 2, "TID": 3, "QID": 4, "QOD": Decimal("0.5"),
    "Q1H": 24, "Q2H": 12, "Q3H": 8, "Q4H": 6, "Q6H": 4, "Q8H": 3, "WK": Decimal(1) / 7,
}
# "300 MG", "0.5 MG/ACTUAT", "1 MG/ML": strength of a single-ingredient RxNorm product.
_STRENGTH = re.compile(r"(\d+(?:\.\d+)?)\s*(MG|MCG|G)(?:/(ML|ACTUAT))?\b", re.IGNORECASE)
_COUNT_UNITS = {"1", "{tbl}", "{tablet}", "{capsule}", "{cap}", "tab", "tablet", "tablets", "cap", "capsule",
                "capsules", "{patch}", "{actuation}", "actuation", "puff", "{puff}"}


def product_strength(product_name: str | None) -> tuple[Decimal, str, str | None] | None:
    """(value, mass unit, per-unit such as ML) from a single-ingredient product name."""
    if not product_name or " / " in product_name:
        return None  # combination products have one strength per ingredient
    match = _STRENGTH.search(product_name)
    if not match:
        return None
    return Decimal(match.group(1)), match.group(2).lower().replace("mcg", "ug"), (match.group(3) or "").upper() or None


def administrations_per_day(timing: Mapping[str, Any] | None) -> Decimal | None:
    if not isinstance(timing, Mapping):
        return None
    repeat = timing.get("repeat")
    if isinstance(repeat, Mapping) and (repeat.get("frequency") or repeat.get("period")):
        frequency = _decimal(repeat.get("frequencyMax") or repeat.get("frequency") or 1)
        period = _decimal(repeat.get("period") or 1)
        unit_days = _PERIOD_DAYS.get(str(repeat.get("periodUnit") or "d"))
        if frequency is None or period is None or unit_days is None or period <= 0:
            return None
        return frequency / (period * unit_days)
    codes = [c.get("code") for c in ((timing.get("code") or {}).get("coding") or []) if isinstance(c, Mapping)]
    for code in codes:
        if code in _TIMING_CODES:
            return Decimal(str(_TIMING_CODES[code]))
    return None


_PRECISION = Decimal("0.000001")  # 1/24 h is not exact in decimal: 200 mg every 8 h must be 600, not 599.99...


def daily_dose(request: Mapping[str, Any], product_name: str | None, target_unit: str, at_least: bool = False) -> Decimal | None:
    """Total daily dose of a MedicationRequest in ``target_unit`` (e.g. "mg"), or None if unknown.

    With ``at_least``, instructions that cannot be computed are left out and the known part
    is returned as a lower bound (None if no part is known): enough to say "above a maximum".
    """
    instructions = [d for d in request.get("dosageInstruction") or [] if isinstance(d, Mapping)]
    total, known = Decimal(0), 0
    for instruction in instructions:
        per_day = administrations_per_day(instruction.get("timing"))
        dose = _dose_in(instruction, product_name, target_unit)
        if per_day is None or dose is None:
            if at_least:
                continue
            return None
        total += per_day * dose
        known += 1
    if known == 0:
        return None
    if total.adjusted() >= 20:
        return total.normalize()  # absurdly large (a typo): rounding to 6 places would overflow the context
    return total.quantize(_PRECISION).normalize()


def _dose_in(instruction: Mapping[str, Any], product_name: str | None, target_unit: str) -> Decimal | None:
    quantity = None
    for dose_and_rate in instruction.get("doseAndRate") or []:
        if not isinstance(dose_and_rate, Mapping):
            continue
        quantity = dose_and_rate.get("doseQuantity") or (dose_and_rate.get("doseRange") or {}).get("high")
        if quantity:
            break
    if not isinstance(quantity, Mapping):
        return None
    value = _decimal(quantity.get("value"))
    unit = str(quantity.get("code") or quantity.get("unit") or "1")
    if value is None:
        return None
    direct = convert_quantity(value, unit, target_unit)
    if direct is not None:
        return direct
    strength = product_strength(product_name)
    if strength is None:
        return None
    amount, mass_unit, per = strength
    if per == "ML":
        in_ml = convert_quantity(value, unit, "mL")
        if in_ml is None:
            return None
        value = in_ml
    elif unit.lower() not in _COUNT_UNITS and unit not in _COUNT_UNITS:
        return None
    return convert_quantity(value * amount, mass_unit, target_unit)


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None and not isinstance(value, bool) else None
    except InvalidOperation:
        return None
