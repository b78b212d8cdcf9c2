"""Write the clinical scenario fixture pairs under fhir_fixtures/scenarios/.

Each case is a realistic CDS Hooks request (context + full prefetch) for a synthetic
patient, and the cards a clinician expects for it, stated here by hand from RULES.md:
expectations are never produced by running the engine. Dates are relative to the
fixture clock NOW so that boundaries (199/200 pg/mL, 91/92 days) are exact.

    python tools/build_fixtures.py          # rewrite every fixture pair
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fhir_fixtures" / "scenarios"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
FHIR_SERVER = "https://ehr.example.org/fhir"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SERVICES = {
    "patient-view": "b12-neuropathy-patient-view",
    "order-select": "b12-neuropathy-order-select",
    "order-sign": "b12-neuropathy-order-sign",
}

# --- synthetic resources --------------------------------------------------------------------


def ago(days: int, hour: int = 9) -> str:
    moment = (NOW - timedelta(days=days)).replace(hour=hour, minute=30, second=0)
    return moment.isoformat().replace("+00:00", "Z")


def patient(pid: str, birth: str = "1958-04-12", gender: str = "female") -> dict[str, Any]:
    return {
        "resourceType": "Patient", "id": pid, "active": True,
        "name": [{"use": "official", "family": "Testpatient", "given": ["Alex"]}],
        "gender": gender, "birthDate": birth,
    }


LABS = {
    "b12": ("2132-9", "Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma"),
    "b12-molar": ("14685-2", "Cobalamin (Vitamin B12) [Moles/volume] in Serum or Plasma"),
    "homocysteine": ("13965-9", "Homocysteine [Moles/volume] in Serum or Plasma"),
    "mma": ("13964-2", "Methylmalonate [Moles/volume] in Serum or Plasma"),
    "glucose": ("1558-6", "Fasting glucose [Mass/volume] in Serum or Plasma"),
}


def lab(oid: str, pid: str, kind: str, value: float, unit: str, days_ago: int, status: str = "final") -> dict[str, Any]:
    code, display = LABS[kind]
    return {
        "resourceType": "Observation", "id": oid, "status": status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": ago(days_ago, 8), "issued": ago(days_ago, 14),
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }


CONDITIONS = {
    "pernicious-anaemia": (ICD10, "D51.0", "Vitamin B12 deficiency anemia due to intrinsic factor deficiency"),
    "b12-deficiency": (ICD10, "E53.8", "Deficiency of other specified B group vitamins"),
    "b12-deficiency-snomed": (SNOMED, "190634004", "Cobalamin deficiency"),
    "polyneuropathy": (ICD10, "G62.9", "Polyneuropathy, unspecified"),
    "polyneuropathy-snomed": (SNOMED, "42345000", "Polyneuropathy"),
}


def condition(cid: str, pid: str, kind: str, clinical: str = "active", verification: str = "confirmed") -> dict[str, Any]:
    system, code, display = CONDITIONS[kind]
    return {
        "resourceType": "Condition", "id": cid,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": ago(800), "recordedDate": ago(790),
    }


DRUGS = {
    "folic-acid-1mg": ("310410", "folic acid 1 MG Oral Tablet", "1 mg by mouth once daily"),
    "folic-acid-0.4mg": ("198640", "folic acid 0.4 MG Oral Tablet", "0.4 mg by mouth once daily"),
    "folic-acid-b12-combo": ("199240", "folic acid 0.4 MG / vitamin B12 0.5 MG Oral Tablet", "1 tablet by mouth once daily"),
    "hydroxocobalamin": ("317106", "hydroxocobalamin 1 MG/ML Injectable Solution", "1 mg IM every 2 months"),
    "cyanocobalamin-inj": ("309594", "vitamin B12 1 MG/ML Injectable Solution", "1 mg IM monthly"),
    "cyanocobalamin-oral": ("309593", "vitamin B12 1 MG Oral Tablet", "1 mg by mouth once daily"),
    "cyanokit": ("700499", "hydroxocobalamin 5000 MG Injection [Cyanokit]", "5 g IV once"),
    "metformin": ("861007", "metformin hydrochloride 500 MG Oral Tablet", "500 mg by mouth twice daily"),
}


def medication_request(mid: str, pid: str, drug: str, status: str = "active", authored_days_ago: int = 30,
                       intent: str = "order", **extra: Any) -> dict[str, Any]:
    code, display, sig = DRUGS[drug]
    resource = {
        "resourceType": "MedicationRequest", "id": mid, "status": status, "intent": intent,
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": ago(authored_days_ago, 10),
        "requester": {"reference": "Practitioner/pr-1"},
        "dosageInstruction": [{"text": sig}],
    }
    resource.update(extra)
    return resource


def draft_order(mid: str, pid: str, drug: str) -> dict[str, Any]:
    resource = medication_request(mid, pid, drug, status="draft", authored_days_ago=0)
    resource["authoredOn"] = NOW.isoformat().replace("+00:00", "Z")
    return resource


def administration(aid: str, pid: str, drug: str, days_ago: int, status: str = "completed") -> dict[str, Any]:
    code, display, _sig = DRUGS[drug]
    return {
        "resourceType": "MedicationAdministration", "id": aid, "status": status,
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": ago(days_ago, 11),
        "dosage": {"route": {"text": "Intramuscular"}, "dose": {"value": 1, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}},
    }


def searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle", "type": "searchset", "total": len(resources),
        "entry": [{"fullUrl": f"{FHIR_SERVER}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}} for r in resources],
    }


# --- cases -----------------------------------------------------------------------------------


@dataclass
class Case:
    recommendation: str  # folder: the recommendation the case is about
    name: str
    hook: str
    description: str
    resources: list[dict[str, Any]]
    drafts: list[dict[str, Any]] = field(default_factory=list)
    selections: list[str] | None = None
    cards: list[dict[str, Any]] = field(default_factory=list)  # expected, written by hand

    @property
    def patient_id(self) -> str:
        return f"pat-{self.name}"[:64]


def request_for(case: Case) -> dict[str, Any]:
    pid = case.patient_id
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in case.resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    context: dict[str, Any] = {"userId": "Practitioner/pr-1", "patientId": pid, "encounterId": f"enc-{case.name}"[:64]}
    if case.hook in ("order-select", "order-sign"):
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": d} for d in case.drafts]}
    if case.hook == "order-select":
        context["selections"] = case.selections if case.selections is not None else [f"MedicationRequest/{d['id']}" for d in case.drafts[:1]]
    patients = by_type.get("Patient") or [patient(pid)]
    return {
        "hook": case.hook,
        "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, f"b12-fixture/{case.recommendation}/{case.name}")),
        "fhirServer": FHIR_SERVER,
        "context": context,
        "prefetch": {
            "patient": patients[0],
            "observations": searchset(by_type.get("Observation", [])),
            "conditions": searchset(by_type.get("Condition", [])),
            "medicationRequests": searchset(by_type.get("MedicationRequest", [])),
            "medicationAdministrations": searchset(by_type.get("MedicationAdministration", [])),
        },
    }


FOLATE_SUMMARY = "Folic acid ordered without vitamin B12 while B12 deficiency is suspected: give hydroxocobalamin first"
FOLATE_PV_SUMMARY = "Active folic acid without vitamin B12 while B12 deficiency is suspected: start hydroxocobalamin"
FOLATE_REASONS = ["b12-deficiency-excluded", "b12-given-elsewhere", "patient-declined"]
STANDARD = {"label": "Order hydroxocobalamin 1 mg IM three times a week for 2 weeks", "actions": [{"type": "create", "resourceType": "MedicationRequest", "code": "317106"}]}
NEURO = {"label": "Order hydroxocobalamin 1 mg IM on alternate days (neurological involvement)", "actions": [{"type": "create", "resourceType": "MedicationRequest", "code": "317106"}]}


def remove(draft_id: str) -> dict[str, Any]:
    return {"label": "Remove the folic acid order", "actions": [{"type": "delete", "resourceId": f"MedicationRequest/{draft_id}"}]}


def folate_card(detail: list[str], suggestions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"topic": "folate-without-b12", "indicator": "critical", "summary": FOLATE_SUMMARY,
            "detailContains": detail, "suggestions": suggestions, "overrideReasons": FOLATE_REASONS}


def folate_cases() -> list[Case]:
    cases = []

    def order_select(name: str, description: str, resources: list[dict[str, Any]], drafts: list[str] | None = None,
                     cards: list[dict[str, Any]] | None = None, hook: str = "order-select") -> None:
        pid = f"pat-{name}"[:64]
        draft_resources = [draft_order(f"draft-{i}", pid, drug) for i, drug in enumerate(drafts or ["folic-acid-1mg"])]
        cases.append(Case("folate-without-b12", name, hook, description, [patient(pid)] + [r(pid) for r in resources],
                          drafts=draft_resources, cards=cards or []))

    def b12(value: float, unit: str = "pg/mL", days: int = 20, status: str = "final"):
        return lambda pid: lab("obs-b12", pid, "b12-molar" if unit == "pmol/L" else "b12", value, unit, days, status)

    order_select("b12-199-positive", "Serum B12 199 pg/mL (below 200) 20 days ago; folic acid 1 mg drafted alone: critical.",
                 [b12(199)], cards=[folate_card(["folic acid 1 MG Oral Tablet", "Serum B12 199 pg/mL", "20 days ago", "below 200 pg/mL"], [STANDARD, remove("draft-0")])])
    order_select("b12-200-boundary-negative", "Serum B12 exactly 200 pg/mL, no homocysteine or MMA: not suspected, no card.", [b12(200)])
    order_select("b12-147-pmol-positive", "Serum B12 147 pmol/L (= 199.2 pg/mL, below 148 pmol/L): critical.",
                 [b12(147, "pmol/L")], cards=[folate_card(["Serum B12 147 pmol/L", "= 199 pg/mL"], [STANDARD, remove("draft-0")])])
    order_select("b12-148-pmol-boundary-negative", "Serum B12 148 pmol/L (= 200.5 pg/mL): not below the cut-off, no card.", [b12(148, "pmol/L")])
    order_select("borderline-homocysteine-16-positive", "B12 250 pg/mL (borderline) with homocysteine 16 umol/L (>15): critical.",
                 [b12(250), lambda pid: lab("obs-hcy", pid, "homocysteine", 16, "umol/L", 20)],
                 cards=[folate_card(["Serum B12 250 pg/mL", "borderline", "Homocysteine 16 umol/L", "(raised)"], [STANDARD, remove("draft-0")])])
    order_select("borderline-homocysteine-15-boundary-negative", "B12 250 pg/mL with homocysteine exactly 15 umol/L (not >15): no card.",
                 [b12(250), lambda pid: lab("obs-hcy", pid, "homocysteine", 15, "umol/L", 20)])
    order_select("borderline-mma-nmol-positive", "B12 280 pg/mL with MMA 450 nmol/L (>400 nmol/L = 0.40 umol/L): critical.",
                 [b12(280), lambda pid: lab("obs-mma", pid, "mma", 450, "nmol/L", 10)],
                 cards=[folate_card(["Methylmalonic acid 450 nmol/L", "(raised)"], [STANDARD, remove("draft-0")])])
    order_select("borderline-mma-400-nmol-boundary-negative", "B12 280 pg/mL with MMA exactly 400 nmol/L: no card.",
                 [b12(280), lambda pid: lab("obs-mma", pid, "mma", 400, "nmol/L", 10)])
    order_select("b12-301-with-homocysteine-negative", "B12 301 pg/mL (above the borderline band) even with homocysteine 30: no card.",
                 [b12(301), lambda pid: lab("obs-hcy", pid, "homocysteine", 30, "umol/L", 20)])
    order_select("combination-with-b12-negative", "Folic acid 0.4 mg + vitamin B12 0.5 mg combination drafted with B12 150 pg/mL: contains B12, no card.",
                 [b12(150)], drafts=["folic-acid-b12-combo"])
    order_select("on-hydroxocobalamin-negative", "Active hydroxocobalamin order with B12 150 pg/mL: on B12 therapy, no card.",
                 [b12(150), lambda pid: medication_request("mr-hydroxo", pid, "hydroxocobalamin", authored_days_ago=60)])
    order_select("cyanokit-is-not-b12-therapy-positive", "Only an active Cyanokit (cyanide antidote) order: not B12 therapy, card fires.",
                 [b12(150), lambda pid: medication_request("mr-cyanokit", pid, "cyanokit", authored_days_ago=5)],
                 cards=[folate_card(["Serum B12 150 pg/mL"], [STANDARD, remove("draft-0")])])
    order_select("b12-drafted-together-negative", "Folic acid and hydroxocobalamin drafted in the same session: no card.",
                 [b12(150)], drafts=["folic-acid-1mg", "hydroxocobalamin"])
    order_select("recent-injection-91-days-negative", "Hydroxocobalamin given 91 days ago: still on therapy (within 91 days), no card.",
                 [b12(150), lambda pid: administration("ma-1", pid, "hydroxocobalamin", 91)])
    order_select("injection-92-days-ago-positive", "Last hydroxocobalamin 92 days ago, no active order: not on therapy, card fires.",
                 [b12(150), lambda pid: administration("ma-1", pid, "hydroxocobalamin", 92)],
                 cards=[folate_card(["Serum B12 150 pg/mL"], [STANDARD, remove("draft-0")])])
    order_select("neurological-involvement-positive", "B12 150 pg/mL with active polyneuropathy: critical, neurological regimen suggested.",
                 [b12(150), lambda pid: condition("cond-pn", pid, "polyneuropathy")],
                 cards=[folate_card(["Neurological involvement: Polyneuropathy, unspecified"], [NEURO, remove("draft-0")])])
    order_select("pernicious-anaemia-no-labs-positive", "Active pernicious anaemia diagnosis, no B12 result: suspected, critical.",
                 [lambda pid: condition("cond-pa", pid, "pernicious-anaemia")],
                 cards=[folate_card(["Active diagnosis: Vitamin B12 deficiency anemia due to intrinsic factor deficiency"], [STANDARD, remove("draft-0")])])
    order_select("resolved-deficiency-negative", "B12 deficiency diagnosis marked resolved, no B12 result: not suspected, no card.",
                 [lambda pid: condition("cond-pa", pid, "pernicious-anaemia", clinical="resolved")])
    order_select("b12-older-than-12-months-negative", "B12 150 pg/mL 400 days ago only: outside the 12-month window, no card.", [b12(150, days=400)])
    order_select("preliminary-result-negative", "B12 150 pg/mL but the result is preliminary: only final results count, no card.", [b12(150, status="preliminary")])
    order_select("order-sign-positive", "order-sign with folic acid 0.4 mg and B12 180 pg/mL: critical.",
                 [b12(180)], drafts=["folic-acid-0.4mg"], hook="order-sign",
                 cards=[folate_card(["folic acid 0.4 MG Oral Tablet", "Serum B12 180 pg/mL"], [STANDARD, remove("draft-0")])])
    order_select("other-drug-selected-negative", "Metformin selected (folic acid not in the selection) with B12 150 pg/mL: no card.",
                 [b12(150)], drafts=["metformin", "folic-acid-1mg"])

    pid = "pat-patient-view-active-folic-acid-positive"
    cases.append(Case("folate-without-b12", "patient-view-active-folic-acid-positive", "patient-view",
                      "patient-view: active folic acid 1 mg order, B12 170 pg/mL, no B12 therapy: warning.",
                      [patient(pid), lab("obs-b12", pid, "b12", 170, "pg/mL", 15), medication_request("mr-folic", pid, "folic-acid-1mg", authored_days_ago=40)],
                      cards=[{"topic": "folate-without-b12", "indicator": "warning", "summary": FOLATE_PV_SUMMARY,
                              "detailContains": ["folic acid 1 MG Oral Tablet", "Serum B12 170 pg/mL"], "suggestions": [STANDARD],
                              "overrideReasons": FOLATE_REASONS}]))
    pid = "pat-patient-view-folic-acid-stopped-negative"
    cases.append(Case("folate-without-b12", "patient-view-folic-acid-stopped-negative", "patient-view",
                      "patient-view: the folic acid order is stopped: no card.",
                      [patient(pid), lab("obs-b12", pid, "b12", 170, "pg/mL", 15),
                       medication_request("mr-folic", pid, "folic-acid-1mg", status="stopped", authored_days_ago=40)]))
    # The CDS Hooks Sandbox's Rx View fires order-select on opening with a draft that has no medication yet.
    pid = "pat-sandbox-empty-draft-negative"
    empty_draft = {"resourceType": "MedicationRequest", "id": "request-123", "status": "draft", "intent": "order",
                   "subject": {"reference": f"Patient/{pid}"}}
    cases.append(Case("folate-without-b12", "sandbox-empty-draft-negative", "order-select",
                      "Sandbox Rx View opening: a draft MedicationRequest without a medication: 200 with no cards.",
                      [patient(pid), lab("obs-b12", pid, "b12", 150, "pg/mL", 15)], drafts=[empty_draft],
                      selections=["MedicationRequest/request-123"]))
    return cases


OVERDUE_REASONS = ["b12-given-elsewhere", "patient-declined", "not-indicated"]
MAINTENANCE_SUGGESTION = {"label": "Order hydroxocobalamin 1 mg IM (maintenance, every 2 months)",
                          "actions": [{"type": "create", "resourceType": "MedicationRequest", "code": "317106"}]}


def overdue(days: int, detail: list[str]) -> dict[str, Any]:
    return {"topic": "maintenance-overdue", "indicator": "warning",
            "summary": f"Vitamin B12 maintenance injection overdue: last one {days} days ago; give hydroxocobalamin 1 mg IM",
            "detailContains": detail, "suggestions": [MAINTENANCE_SUGGESTION], "overrideReasons": OVERDUE_REASONS}


def due(days: int, detail: list[str]) -> dict[str, Any]:
    return {"topic": "maintenance-overdue", "indicator": "info",
            "summary": f"Vitamin B12 maintenance injection due: last one {days} days ago; plan hydroxocobalamin 1 mg IM",
            "detailContains": detail, "suggestions": [MAINTENANCE_SUGGESTION]}


def maintenance_cases() -> list[Case]:
    cases = []

    def case(name: str, description: str, build, cards: list[dict[str, Any]] | None = None) -> None:
        pid = f"pat-{name}"[:64]
        cases.append(Case("maintenance-overdue", name, "patient-view", description, [patient(pid)] + build(pid), cards=cards or []))

    def with_condition(*more):
        return lambda pid: [condition("cond-pa", pid, "pernicious-anaemia")] + [m(pid) for m in more]

    def injection(aid: str, days: int, drug: str = "hydroxocobalamin", status: str = "completed"):
        return lambda pid: administration(aid, pid, drug, days, status)

    def order(mid: str, status: str, days: int, drug: str = "hydroxocobalamin", **extra):
        return lambda pid: medication_request(mid, pid, drug, status=status, authored_days_ago=days, **extra)

    case("overdue-92-days-positive", "Pernicious anaemia, last hydroxocobalamin injection 92 days ago: warning, overdue.",
         with_condition(injection("ma-1", 92), injection("ma-0", 150)),
         [overdue(92, [f"{ago(92)[:10]}, 92 days ago", "Vitamin B12 deficiency anemia due to intrinsic factor deficiency", "B12 injections recorded: 2"])])
    case("due-91-days-boundary", "Last injection exactly 91 days ago: due (info), not yet overdue.",
         with_condition(injection("ma-1", 91)), [due(91, ["91 days ago"])])
    case("due-61-days-positive", "Last injection 61 days ago: due (info).", with_condition(injection("ma-1", 61)), [due(61, ["61 days ago"])])
    case("60-days-boundary-negative", "Last injection 60 days ago: not yet due, no card.", with_condition(injection("ma-1", 60)))
    case("two-injections-no-diagnosis-positive", "No diagnosis coded but two past B12 injections (100 and 160 days ago): on maintenance, warning.",
         lambda pid: [injection("ma-1", 100)(pid), injection("ma-0", 160)(pid)], [overdue(100, ["B12 injections recorded: 2"])])
    case("single-injection-no-diagnosis-negative", "One past injection 120 days ago and no diagnosis: not on maintenance, no card.",
         lambda pid: [injection("ma-1", 120)(pid)])
    case("next-order-after-last-injection-negative", "Overdue, but an active hydroxocobalamin order was written after the last injection: no card.",
         with_condition(injection("ma-1", 100), order("mr-next", "active", 20)))
    case("standing-order-before-last-injection-positive", "Active standing order written before the last injection is not a new order: warning.",
         with_condition(injection("ma-1", 100), order("mr-standing", "active", 300)), [overdue(100, ["100 days ago"])])
    case("standing-order-future-validity-negative", "Old order whose validity starts next week (next injection booked): no card.",
         with_condition(injection("ma-1", 100), order("mr-booked", "active", 300,
                                                       dispenseRequest={"validityPeriod": {"start": (NOW + timedelta(days=7)).date().isoformat()}})))
    case("stopped-order-lifelong-warning-positive", "Maintenance order stopped and not replaced, last injection 120 days ago: warning that says therapy is lifelong.",
         with_condition(injection("ma-1", 120), order("mr-stopped", "stopped", 200)),
         [overdue(120, ["stopped or cancelled and has not been replaced", "lifelong"])])
    case("order-date-when-no-administrations-positive", "No administrations recorded: the last completed injection order (100 days ago) dates the last injection: warning.",
         with_condition(order("mr-old", "completed", 100)), [overdue(100, ["no administration is recorded"])])
    case("cyanokit-does-not-count-positive", "A Cyanokit dose 10 days ago is not a B12 injection; last hydroxocobalamin 100 days ago: warning.",
         with_condition(injection("ma-1", 100), injection("ma-ck", 10, drug="cyanokit")), [overdue(100, ["100 days ago"])])
    case("cyanocobalamin-injection-counts-negative", "Last B12 injection was cyanocobalamin 1 mg/mL 30 days ago: not due.",
         with_condition(injection("ma-1", 30, drug="cyanocobalamin-inj")))
    case("no-injection-ever-negative", "Pernicious anaemia but no B12 injection or order ever: no maintenance card (start-b12-replacement covers it).",
         with_condition())
    return cases


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    for case in folate_cases() + maintenance_cases():
        folder = OUT / case.recommendation
        folder.mkdir(parents=True, exist_ok=True)
        request = request_for(case)
        expected = {
            "description": case.description,
            "service": SERVICES[case.hook],
            "now": NOW.isoformat().replace("+00:00", "Z"),
            "cards": case.cards,
        }
        (folder / f"{case.name}.request.json").write_text(json.dumps(request, indent=2) + "\n")
        (folder / f"{case.name}.expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    print(f"wrote fixture pairs to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
