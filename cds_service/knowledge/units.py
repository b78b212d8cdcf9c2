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
_family("volume", {"L": "1", "dL": "1e-1", "mL": "1e-3", "uL": "1e-6", "fL": "1e-15"})
# eGFR: the unit is a rate per standard body surface area; one member is enough to compare.
_family("volume-rate/area", {"mL/min/{1.73_m2}": "1"})

# Spellings seen in real EHR data for the same UCUM units (matched case-insensitively below).
_ALIASES = {
    "mcg": "ug", "µg": "ug", "μg": "ug", "mcg/L": "ug/L", "mcg/mL": "ug/mL", "µg/L": "ug/L", "µg/mL": "ug/mL",
    "µg/dL": "ug/dL", "mcg/dL": "ug/dL",
    "µmol/L": "umol/L", "μmol/L": "umol/L", "micromol/L": "umol/L", "mcmol/L": "umol/L",
    "um3": "fL", "µm3": "fL", "cu micron": "fL",
    "mL/min/1.73m2": "mL/min/{1.73_m2}", "mL/min/1.73 m2": "mL/min/{1.73_m2}", "mL/min/1.73m^2": "mL/min/{1.73_m2}",
    "mL/min/1.73_m2": "mL/min/{1.73_m2}", "mL/min/{1.73m2}": "mL/min/{1.73_m2}", "mL/min/1.73m²": "mL/min/{1.73_m2}",
    "mL/min/1.73 m²": "mL/min/{1.73_m2}", "mL/min/{1.73_m2}": "mL/min/{1.73_m2}",
}

# Feeds send UCUM units in any case ("PMOL/L", "ng/l"). Folding case is safe for every unit
# here: none of these families has a prefix whose case changes its meaning (no mega- or peta-).
_BY_FOLDED: dict[str, str] = {unit.casefold(): unit for unit in _UNITS}
_BY_FOLDED.update({alias.casefold(): unit for alias, unit in _ALIASES.items()})


def canonical_unit(unit: str) -> str:
    unit = unit.strip()
    if unit in _UNITS:
        return unit
    return _BY_FOLDED.get(unit.casefold(), unit)


def convert_quantity(value: Decimal, unit: str, target_unit: str) -> Decimal | None:
    """Convert ``value`` from ``unit`` to ``target_unit``; None if not the same dimension."""
    source = _UNITS.get(canonical_unit(unit))
    target = _UNITS.get(canonical_unit(target_unit))
    if source is None or target is None or source[0] != target[0]:
        return None
    return value * source[1] / target[1]
