"""Shift every FHIR date in a fixture so it is as old relative to today as to its clock."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def roll_dates(value: Any, days: int) -> Any:
    if isinstance(value, dict):
        return {key: roll_dates(item, days) for key, item in value.items()}
    if isinstance(value, list):
        return [roll_dates(item, days) for item in value]
    if isinstance(value, str) and _DATE.match(value):
        return (date.fromisoformat(value) + timedelta(days=days)).isoformat()
    if isinstance(value, str) and _DATETIME.match(value):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")) + timedelta(days=days)
        text = moment.isoformat()
        return text.replace("+00:00", "Z") if value.endswith("Z") else text
    return value
