"""UCUM unit conversion for the unit families lab results and doses use.

Only dimensionally exact conversions live here (pg/mL = ng/L, nmol/L -> umol/L, mcg -> mg).
Conversions that depend on the analyte (B12 pmol/L <-> pg/mL uses cobalamin's molar
mass) are knowledge and are written in the PlanDefinitions with a parameter.
"""

from __future__ import annotations

from decimal import Decimal

# unit -> (dimension, factor to the dimension's base unit)
_UNITS: dict[str, tuple[str, Decimal]] = {}


def _family(dimension: str, units: dict[str, str]) -> None:
    for unit, factor in units.items():
        _UNITS[unit] = (dimension, Decimal(factor))


_family("mass/volume", {
    "g/L": "1", "mg/L": "1e-3", "ug/L": "1e-6", "ng/L": "1e-9", "pg/L": "1e-12",
    "g/dL": "10", "mg/dL": "1e-2", "ug/dL": "1e-5", "ng/dL": "1e-8",
    "g/mL": "1e3", "mg/mL": "1", "ug/mL": "1e-3", "ng/mL": "1e-6", "pg/mL": "1e-9",
})
_family("substance/volume", {
    "mol/L": "1", "mmol/L": "1e-3", "umol/L": "1e-6", "nmol/L": "1e-9", "pmol/L": "1e-12",
    "nmol/mL": "1e-6", "umol/mL": "1e-3",
})
_family("mass", {"kg": "1e3", "g": "1", "mg": "1e-3", "ug": "1e-6", "ng": "1e-9"})
_family("volume", {"L": "1", "dL": "1e-1", "mL": "1e-3", "uL": "1e-6"})

# Spellings seen in real EHR data for the same UCUM units.
_ALIASES = {
    "mcg": "ug", "µg": "ug", "μg": "ug", "mcg/L": "ug/L", "mcg/mL": "ug/mL", "µg/L": "ug/L",
    "µmol/L": "umol/L", "μmol/L": "umol/L", "micromol/L": "umol/L",
    "pg/ml": "pg/mL", "ng/ml": "ng/mL", "mg/dl": "mg/dL", "ug/dl": "ug/dL", "g/dl": "g/dL",
    "ml": "mL", "l": "L", "MG": "mg", "ML": "mL",
}


def canonical_unit(unit: str) -> str:
    unit = unit.strip()
    return _ALIASES.get(unit, unit)


def convert_quantity(value: Decimal, unit: str, target_unit: str) -> Decimal | None:
    """Convert ``value`` from ``unit`` to ``target_unit``; None if not the same dimension."""
    source = _UNITS.get(canonical_unit(unit))
    target = _UNITS.get(canonical_unit(target_unit))
    if source is None or target is None or source[0] != target[0]:
        return None
    return value * source[1] / target[1]
