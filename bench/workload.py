"""Benchmark workloads: deterministic synthetic patients of a given record size, per hook.

``make_request(size, hook)`` returns a complete, valid CDS Hooks request whose prefetch holds
``size`` resources (the Patient included): labs drawn over years in panels (codes the rules read,
such as B12 2132-9, MCV 787-2, potassium 2823-3, eGFR 98979-8, HbA1c 4548-4, and codes they do
not read, such as hemoglobin 718-7, ferritin 2276-4, random glucose 2345-7), medication orders
and administrations across RxNorm products, conditions, procedures and lab orders.

The clinical story is fixed so that the engine has real work at every size: a 68-year-old with
type 2 diabetes on metformin for six years and an active polyneuropathy, a borderline B12 with a
raised homocysteine in the last year (suspected deficiency), on hydroxocobalamin maintenance,
eGFR just under 60. order-select drafts folic acid and pregabalin 900 mg/day; order-sign drafts a
cyanocobalamin injection and pregabalin. Everything else is history, generated from a seeded
RNG: on a given day the same size always gives the same request (dates are relative to today,
because the service evaluates against its own clock).

Resources follow the style of ``tools/fixtures/common.py`` (dates relative to a clock,
LOINC/RxNorm/ICD-10-CM codes from the team's clinical reference); they are built here rather than
imported so that the benchmark does not depend on the fixture builder.

Run ``python -m bench.workload --out DIR`` to write every workload as JSON.
"""

from __future__ import annotations

import argparse
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

NOW = datetime.now(timezone.utc).replace(microsecond=0)  # requests are evaluated against the server clock
SIZES = (10, 100, 1000, 10000)
HOOKS = ("patient-view", "order-select", "order-sign")
SERVICES = {
    "patient-view": "b12-neuropathy-patient-view",
    "order-select": "b12-neuropathy-order-select",
    "order-sign": "b12-neuropathy-order-sign",
}
PREFETCH_KEYS = {
    "Observation": "observations",
    "Condition": "conditions",
    "MedicationRequest": "medicationRequests",
    "MedicationAdministration": "medicationAdministrations",
    "Procedure": "procedures",
    "ServiceRequest": "serviceRequests",
}
FHIR_SERVER = "https://ehr.example.org/fhir"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
UCUM = "http://unitsofmeasure.org"
PATIENT_ID = "bench-patient"

# LOINC code -> (display, UCUM unit, typical low, typical high, read by the rules?)
LABS: dict[str, tuple[str, str, float, float, bool]] = {
    # complete blood count
    "718-7": ("Hemoglobin [Mass/volume] in Blood", "g/dL", 11.0, 15.5, False),
    "4544-3": ("Hematocrit [Volume Fraction] of Blood by Automated count", "%", 33.0, 46.0, True),
    "787-2": ("MCV [Entitic volume] by Automated count", "fL", 84.0, 104.0, True),
    "60474-4": ("Reticulocytes [#/volume] in Blood by Automated count", "10*9/L", 25.0, 110.0, False),
    # basic metabolic panel
    "2823-3": ("Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.4, 5.1, True),
    "2160-0": ("Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.9, 1.4, True),
    "98979-8": ("Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by "
                "Creatinine-based formula (CKD-EPI 2021)", "mL/min/{1.73_m2}", 55.0, 75.0, True),
    "2345-7": ("Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 90.0, 210.0, False),
    # periodic
    "4548-4": ("Hemoglobin A1c/Hemoglobin.total in Blood", "%", 6.4, 8.2, True),
    "2276-4": ("Ferritin [Mass/volume] in Serum or Plasma", "ng/mL", 30.0, 250.0, False),
    "2498-4": ("Iron [Mass/volume] in Serum or Plasma", "ug/dL", 50.0, 150.0, True),
    "2284-8": ("Folate [Mass/volume] in Serum or Plasma", "ng/mL", 4.0, 18.0, True),
    "2283-0": ("Folate [Mass/volume] in Red Blood Cells", "ng/mL", 250.0, 700.0, False),
    "3016-3": ("Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L", 0.6, 4.0, True),
    "2132-9": ("Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma", "pg/mL", 180.0, 600.0, True),
    "13965-9": ("Homocysteine [Moles/volume] in Serum or Plasma", "umol/L", 8.0, 19.0, True),
    "13964-2": ("Methylmalonate [Moles/volume] in Serum or Plasma", "umol/L", 0.15, 0.45, True),
}
# Lab draws: each visit takes one panel; weights are how often each panel is drawn.
PANELS: tuple[tuple[float, tuple[str, ...]], ...] = (
    (0.40, ("718-7", "4544-3", "787-2", "60474-4")),  # CBC
    (0.40, ("2823-3", "2160-0", "98979-8", "2345-7")),  # BMP
    (0.08, ("4548-4",)),
    (0.04, ("2276-4", "2498-4")),
    (0.03, ("2284-8", "2283-0")),
    (0.03, ("3016-3",)),
    (0.02, ("2132-9", "13965-9", "13964-2")),
)

# RxNorm products (SCDs from the team's clinical reference), with a structured dose when it matters.
DRUGS: dict[str, tuple[str, str]] = {
    "metformin-500": ("861007", "metformin hydrochloride 500 MG Oral Tablet"),
    "metformin-1000": ("861004", "metformin hydrochloride 1000 MG Oral Tablet"),
    "hydroxocobalamin": ("317106", "hydroxocobalamin 1 MG/ML Injectable Solution"),
    "cyanocobalamin-inj": ("309594", "vitamin B12 1 MG/ML Injectable Solution"),
    "folic-acid-1mg": ("310410", "folic acid 1 MG Oral Tablet"),
    "pregabalin-150": ("483440", "pregabalin 150 MG Oral Capsule"),
    "pregabalin-75": ("483450", "pregabalin 75 MG Oral Capsule"),
    "pregabalin-300": ("483444", "pregabalin 300 MG Oral Capsule"),
    "duloxetine-60": ("596934", "duloxetine 60 MG Delayed Release Oral Capsule"),
    "gabapentin-300": ("310431", "gabapentin 300 MG Oral Capsule"),
    "amitriptyline-25": ("856834", "amitriptyline hydrochloride 25 MG Oral Tablet"),
    "omeprazole": ("7646", "omeprazole"),
    "carbamazepine-200": ("308979", "carbamazepine 200 MG Oral Tablet"),
}
HISTORY_DRUGS = ("metformin-500", "pregabalin-75", "gabapentin-300", "omeprazole", "amitriptyline-25", "duloxetine-60",
                 "folic-acid-1mg", "carbamazepine-200")
# Problem-list conditions: (system, code, display); the first ones are read by the rules.
CONDITIONS = (
    (ICD10, "E11.9", "Type 2 diabetes mellitus without complications"),
    (ICD10, "G62.9", "Polyneuropathy, unspecified"),
    (ICD10, "N18.3", "Chronic kidney disease, stage 3 (moderate)"),
    (ICD10, "E03.9", "Hypothyroidism, unspecified"),
    (ICD10, "I10", "Essential (primary) hypertension"),
    (ICD10, "E78.5", "Hyperlipidemia, unspecified"),
    (ICD10, "M17.0", "Bilateral primary osteoarthritis of knee"),
    (ICD10, "K21.9", "Gastro-esophageal reflux disease without esophagitis"),
)
# Share of the record each resource type takes beyond the story (the rest is Observations).
SHARES = {"MedicationAdministration": 0.05, "MedicationRequest": 0.05, "Condition": 0.02, "ServiceRequest": 0.02, "Procedure": 0.01}


def ago(days: float, hour: int = 9) -> str:
    moment = (NOW - timedelta(days=days)).replace(hour=hour, minute=30, second=0)
    return moment.isoformat().replace("+00:00", "Z")


def _ref() -> dict[str, str]:
    return {"reference": f"Patient/{PATIENT_ID}"}


def patient() -> dict[str, Any]:
    birth = NOW.date().replace(year=NOW.year - 68) - timedelta(days=40)
    return {
        "resourceType": "Patient", "id": PATIENT_ID, "active": True,
        "name": [{"use": "official", "family": "Benchmark", "given": ["Robin"]}],
        "gender": "female", "birthDate": birth.isoformat(),
    }


def lab(oid: str, code: str, value: float, days_ago: float, status: str = "final") -> dict[str, Any]:
    display, unit, _low, _high, _read = LABS[code]
    return {
        "resourceType": "Observation", "id": oid, "status": status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": _ref(),
        "effectiveDateTime": ago(days_ago, 8), "issued": ago(days_ago, 14),
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def condition(cid: str, system: str, code: str, display: str, onset_days_ago: int, clinical: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Condition", "id": cid,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
        "subject": _ref(),
        "onsetDateTime": ago(onset_days_ago), "recordedDate": ago(max(onset_days_ago - 10, 0)),
    }


def dosage(value: float, unit: str, frequency: int, period: float = 1, period_unit: str = "d", text: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "timing": {"repeat": {"frequency": frequency, "period": period, "periodUnit": period_unit}},
        "doseAndRate": [{"doseQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}],
    }
    if text:
        result["text"] = text
    return result


def medication_request(mid: str, drug: str, status: str, authored_days_ago: float, dose: dict[str, Any] | None = None) -> dict[str, Any]:
    code, display = DRUGS[drug]
    return {
        "resourceType": "MedicationRequest", "id": mid, "status": status, "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}], "text": display},
        "subject": _ref(),
        "authoredOn": ago(authored_days_ago, 10),
        "requester": {"reference": "Practitioner/pr-1"},
        "dosageInstruction": [dose or {"text": "as directed"}],
    }


def draft(mid: str, drug: str, dose: dict[str, Any]) -> dict[str, Any]:
    resource = medication_request(mid, drug, "draft", 0, dose)
    resource["authoredOn"] = NOW.isoformat().replace("+00:00", "Z")
    return resource


def administration(aid: str, drug: str, days_ago: float, value: float = 1, unit: str = "mg", route: str = "Intramuscular") -> dict[str, Any]:
    code, display = DRUGS[drug]
    return {
        "resourceType": "MedicationAdministration", "id": aid, "status": "completed",
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}], "text": display},
        "subject": _ref(),
        "effectiveDateTime": ago(days_ago, 11),
        "dosage": {"route": {"text": route}, "dose": {"value": value, "unit": unit, "system": UCUM, "code": unit}},
    }


def service_request(sid: str, code: str, status: str, days_ago: float) -> dict[str, Any]:
    display = LABS[code][0]
    return {
        "resourceType": "ServiceRequest", "id": sid, "status": status, "intent": "order",
        "category": [{"coding": [{"system": SNOMED, "code": "108252007", "display": "Laboratory procedure"}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": _ref(),
        "authoredOn": ago(days_ago, 10),
        "requester": {"reference": "Practitioner/pr-1"},
    }


def procedure(pid: str, days_ago: float) -> dict[str, Any]:
    return {
        "resourceType": "Procedure", "id": pid, "status": "completed",
        "code": {"coding": [{"system": SNOMED, "code": "73761001", "display": "Colonoscopy"}], "text": "Colonoscopy"},
        "subject": _ref(),
        "performedDateTime": ago(days_ago, 10),
    }


def story() -> list[dict[str, Any]]:
    """The ten resources every size starts with (the smallest workload is exactly these)."""
    return [
        patient(),
        condition("cond-diabetes", *CONDITIONS[0], onset_days_ago=2900),
        condition("cond-neuropathy", *CONDITIONS[1], onset_days_ago=400),
        medication_request("mr-metformin", "metformin-1000", "active", 2300, dosage(1000, "mg", 2)),
        lab("obs-b12-latest", "2132-9", 245, 40),
        lab("obs-hcy-latest", "13965-9", 18.5, 40),
        lab("obs-mcv-latest", "787-2", 101.5, 12),
        lab("obs-egfr-latest", "98979-8", 56, 12),
        lab("obs-k-latest", "2823-3", 4.1, 12),
        administration("ma-b12-latest", "hydroxocobalamin", 70),
    ]


def record(size: int, seed: int = 12) -> list[dict[str, Any]]:
    """``size`` resources: the story, then seeded history in realistic proportions."""
    if size < 10:
        raise ValueError("the smallest workload is the 10-resource story")
    rng = random.Random(seed * 1_000_003 + size)
    resources = story()
    extra = size - len(resources)
    horizon = 365 * min(10, max(1, size // 1000 or 1)) if size >= 1000 else 730  # days of history
    counts = {rtype: int(extra * share) for rtype, share in SHARES.items()}
    counts["Observation"] = extra - sum(counts.values())

    # Maintenance injections every ~60 days going back, then other administrations.
    for i in range(counts["MedicationAdministration"]):
        if i < horizon // 60:
            resources.append(administration(f"ma-{i}", "hydroxocobalamin", 70 + 60 * (i + 1) + rng.randint(-5, 5)))
        else:
            drug = rng.choice(("omeprazole", "gabapentin-300", "pregabalin-75"))
            resources.append(administration(f"ma-{i}", drug, rng.uniform(1, horizon), value=rng.choice((20, 75, 300)),
                                            unit="mg", route="Oral"))
    for i in range(counts["MedicationRequest"]):
        drug = HISTORY_DRUGS[i % len(HISTORY_DRUGS)] if i >= 2 else ("hydroxocobalamin", "pregabalin-75")[i]
        status = rng.choice(("completed", "stopped", "completed", "entered-in-error")) if i >= 2 else "active"
        dose = dosage(75, "mg", 2) if drug.startswith("pregabalin") else dosage(1, "mg", 1, 2, "mo") \
            if drug == "hydroxocobalamin" else None
        resources.append(medication_request(f"mr-{i}", drug, status, rng.uniform(1, horizon), dose))
    for i in range(counts["Condition"]):
        system, code, display = CONDITIONS[2 + i % (len(CONDITIONS) - 2)]
        resources.append(condition(f"cond-{i}", system, code, display, rng.randint(30, horizon + 30),
                                   rng.choice(("active", "active", "resolved"))))
    for i in range(counts["ServiceRequest"]):
        code = rng.choice(("2132-9", "2823-3", "4548-4", "718-7", "2276-4"))
        resources.append(service_request(f"sr-{i}", code, "completed", rng.uniform(2, horizon)))
    for i in range(counts["Procedure"]):
        resources.append(procedure(f"proc-{i}", rng.uniform(30, horizon)))

    weights = [w for w, _ in PANELS]
    made = 0
    while made < counts["Observation"]:
        _, codes = rng.choices(PANELS, weights)[0]
        days = rng.uniform(1, horizon)
        for code in codes:
            if made == counts["Observation"]:
                break
            _display, _unit, low, high, _read = LABS[code]
            value = round(rng.uniform(low, high), 2 if high < 10 else 1)
            status = "final" if rng.random() > 0.02 else "amended"
            resources.append(lab(f"obs-{made}", code, value, days, status))
            made += 1
    assert len(resources) == size, (len(resources), size)
    return resources


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle", "type": "searchset", "total": len(resources),
        "entry": [{"fullUrl": f"{FHIR_SERVER}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                  for r in resources],
    }


def drafts_for(hook: str) -> list[dict[str, Any]]:
    if hook == "order-select":
        return [draft("draft-folic", "folic-acid-1mg", dosage(1, "mg", 1)),
                draft("draft-pregabalin", "pregabalin-300", dosage(300, "mg", 3))]
    if hook == "order-sign":
        return [draft("draft-cyano", "cyanocobalamin-inj", dosage(1, "mg", 1, 1, "mo")),
                draft("draft-pregabalin", "pregabalin-150", dosage(150, "mg", 2))]
    return []


def context_for(hook: str) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/pr-1", "patientId": PATIENT_ID, "encounterId": "enc-bench"}
    drafts = drafts_for(hook)
    if drafts:
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": d} for d in drafts]}
    if hook == "order-select":
        context["selections"] = [f"MedicationRequest/{d['id']}" for d in drafts]
    return context


def make_request(size: int, hook: str, *, fhir_server: str = FHIR_SERVER, with_prefetch: bool = True) -> dict[str, Any]:
    """A complete CDS Hooks request; without prefetch, only the Patient is prefetched and the
    six searches are left to the FHIR server (the fallback path)."""
    resources = record(size)
    by_type: dict[str, list[dict[str, Any]]] = {rtype: [] for rtype in PREFETCH_KEYS}
    for resource in resources[1:]:
        by_type[resource["resourceType"]].append(resource)
    prefetch: dict[str, Any] = {"patient": resources[0]}
    if with_prefetch:
        prefetch.update({key: searchset(by_type[rtype]) for rtype, key in PREFETCH_KEYS.items()})
    return {
        "hook": hook,
        "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, f"b12-bench/{hook}/{size}")),
        "fhirServer": fhir_server,
        "fhirAuthorization": {"access_token": "bench-ehr-access-token", "token_type": "Bearer", "expires_in": 300,
                              "scope": "patient/*.read", "subject": "b12-cds-service"},
        "context": context_for(hook),
        "prefetch": prefetch,
    }


def composition(size: int) -> dict[str, int]:
    """Resource counts by type, and how many Observations have a code the rules read."""
    counts: dict[str, int] = {}
    read = 0
    for resource in record(size):
        counts[resource["resourceType"]] = counts.get(resource["resourceType"], 0) + 1
        if resource["resourceType"] == "Observation" and LABS[resource["code"]["coding"][0]["code"]][4]:
            read += 1
    counts["Observation (codes the rules read)"] = read
    return counts


def write_all(out: Path, sizes: tuple[int, ...] = SIZES) -> dict[tuple[int, str], Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for size in sizes:
        for hook in HOOKS:
            path = out / f"{hook}-{size}.json"
            path.write_bytes(orjson.dumps(make_request(size, hook)))
            written[(size, hook)] = path
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / ".work" / "workloads")
    args = parser.parse_args()
    for (size, hook), path in write_all(args.out).items():
        print(f"{hook:13} {size:6} resources  {path.stat().st_size / 1e6:7.2f} MB  {path}")
    for size in SIZES:
        print(size, composition(size))


if __name__ == "__main__":
    main()
