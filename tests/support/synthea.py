"""Synthea R4 sample patients (SMART's, Apache-2.0) as CDS Hooks patient-view requests.

A bundle is the whole chart; the request carries it the way an EHR fulfils this service's
prefetch templates: the Patient, and every resource of each type a template asks for. The
clock is the chart's last recorded date (the data was generated years ago: judged "now",
every result would be stale).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENDORED = ROOT / "fhir_fixtures" / "third-party" / "synthea-r4"
SHARED = ROOT.parent / "shared" / "data" / "synthea-r4"  # the full set, where it exists (CI)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:\d{2}))?")
_DATE_KEYS = ("effectiveDateTime", "authoredOn", "recordedDate", "onsetDateTime", "issued", "performedDateTime")


def bundle_files() -> list[Path]:
    """The vendored bundles, and every bundle of the full set when it is there (by name, once)."""
    files = {path.name: path for path in sorted(VENDORED.glob("*_*.json"))}
    if SHARED.is_dir():
        files.update({path.name: path for path in sorted(SHARED.glob("*_*.json"))})
    return [files[name] for name in sorted(files)]


def patient_view_request(bundle: dict[str, Any], templates: dict[str, str]) -> tuple[dict[str, Any], datetime]:
    resources = [entry["resource"] for entry in bundle.get("entry", []) if isinstance(entry.get("resource"), dict)]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    prefetch: dict[str, Any] = {}
    for key, template in templates.items():
        resource_type = re.split(r"[/?]", template, maxsplit=1)[0]
        if resource_type == "Patient":
            prefetch[key] = patient
            continue
        matches = [r for r in resources if r["resourceType"] == resource_type]
        prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "total": len(matches),
                         "entry": [{"resource": r, "search": {"mode": "match"}} for r in matches]}
    request = {
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "hook": "patient-view",
        "context": {"patientId": patient["id"], "userId": "Practitioner/synthea-review"},
        "prefetch": prefetch,
    }
    return request, _chart_clock(resources)


def _chart_clock(resources: list[dict[str, Any]]) -> datetime:
    latest = datetime(1900, 1, 1, tzinfo=UTC)
    for resource in resources:
        for key in _DATE_KEYS:
            value = resource.get(key)
            if isinstance(value, str) and _DATE.fullmatch(value):
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
                moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
                latest = max(latest, moment)
    return latest + timedelta(days=1)


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
