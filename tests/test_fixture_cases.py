"""The fixture case files (tools/fixtures/cases/) are the source of the generated fixture pairs.

Expanding them reproduces every committed generated pair byte for byte, every committed generated
pair has a case, and the expander never overwrites or deletes a file it did not write.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import build_fixtures  # noqa: E402
from build_fixtures import MANIFEST, apply, plan, written_before  # noqa: E402
from fixtures.vocabulary import VocabularyError, expand, load, recommendations  # noqa: E402

SCENARIOS = ROOT / "fhir_fixtures" / "scenarios"
HAND_WRITTEN = ("order-not-checked", "messy-charts")


@pytest.fixture(scope="module")
def planned() -> build_fixtures.Plan:
    return plan(recommendations())


def tree_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_expanding_the_cases_reproduces_every_committed_pair_byte_for_byte(planned: build_fixtures.Plan) -> None:
    different = [f"{folder}/{name}" for folder, files in planned.items() for name, content in files.items()
                 if not (SCENARIOS / folder / name).is_file() or (SCENARIOS / folder / name).read_text() != content]
    assert not different, f"{len(different)} generated files differ from the case files, e.g. {different[:5]}"
    assert sum(len(files) for files in planned.values()) // 2 >= 200  # all of them, not an empty plan


def test_every_committed_generated_pair_has_a_case(planned: build_fixtures.Plan) -> None:
    for folder in sorted(p for p in SCENARIOS.iterdir() if p.is_dir()):
        if folder.name not in planned:
            # No case file: a hand-written folder, which the expander has never written to.
            assert not (folder / MANIFEST).exists(), f"{folder.name}: manifest without a case file"
            continue
        on_disk = {p.name for p in folder.glob("*.json")}
        assert on_disk == set(planned[folder.name]), f"{folder.name}: files without a case: {sorted(on_disk - set(planned[folder.name]))}"
        assert written_before(folder) == set(planned[folder.name])
    assert not set(HAND_WRITTEN) & set(planned)


def test_case_names_are_unique_and_well_formed() -> None:
    for recommendation in recommendations():
        names = [case["name"] for case in load(recommendation)]
        assert len(names) == len(set(names)), recommendation
        assert all(name and "/" not in name and name == name.strip() for name in names), recommendation


@pytest.fixture()
def copy_of_scenarios(tmp_path: Path) -> Path:
    out = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, out)
    return out


def test_the_expander_leaves_hand_written_files_and_folders_alone(copy_of_scenarios: Path, planned: build_fixtures.Plan) -> None:
    out = copy_of_scenarios
    mine = out / "maintenance-overdue" / "my-own-case.request.json"
    mine.write_text('{"hand": "written"}\n')
    (out / "maintenance-overdue" / "notes.txt").write_text("a note\n")
    hand_written = {name: tree_digest(out / name) for name in HAND_WRITTEN}
    # Drop a whole recommendation and one case of another: their generated files go, nothing else.
    smaller = copy.deepcopy(planned)
    del smaller["monitoring-due"]
    gone = "overdue-92-days-positive"
    smaller["maintenance-overdue"] = {n: c for n, c in smaller["maintenance-overdue"].items() if not n.startswith(gone + ".")}

    changes = apply(smaller, out, prune=True)

    assert f"delete maintenance-overdue/{gone}.request.json" in changes
    assert not (out / "maintenance-overdue" / f"{gone}.request.json").exists()
    assert mine.read_text() == '{"hand": "written"}\n' and (out / "maintenance-overdue" / "notes.txt").exists()
    assert {name: tree_digest(out / name) for name in HAND_WRITTEN} == hand_written
    assert not (out / "monitoring-due").exists()  # only generated files were in it
    assert written_before(out / "maintenance-overdue") == set(smaller["maintenance-overdue"])
    # Running again changes nothing.
    assert apply(smaller, out, prune=True) == []


def test_a_folder_holding_a_hand_written_file_keeps_it_when_its_cases_are_gone(copy_of_scenarios: Path,
                                                                                 planned: build_fixtures.Plan) -> None:
    out = copy_of_scenarios
    (out / "monitoring-due" / "hand.expected.json").write_text("{}\n")
    smaller = {k: v for k, v in planned.items() if k != "monitoring-due"}
    apply(smaller, out, prune=True)
    assert [p.name for p in (out / "monitoring-due").iterdir()] == ["hand.expected.json"]


def test_the_expander_refuses_to_overwrite_a_file_it_did_not_write(copy_of_scenarios: Path, planned: build_fixtures.Plan) -> None:
    out = copy_of_scenarios
    before = tree_digest(out)
    # A case whose name collides with a hand-written one, and a case file for a hand-written folder.
    colliding = copy.deepcopy(planned)
    colliding["order-not-checked"] = {p.name: "{}\n" for p in (out / "order-not-checked").glob("*.json")}
    with pytest.raises(SystemExit, match="refusing to overwrite"):
        apply(colliding, out, prune=True)
    # A generated file whose manifest entry is gone is no longer the tool's either.
    manifest = out / "maintenance-overdue" / MANIFEST
    manifest.write_text("\n".join(line for line in manifest.read_text().splitlines() if "60-days-boundary" not in line) + "\n")
    with pytest.raises(SystemExit, match="60-days-boundary-negative"):
        apply(planned, out, prune=True)
    after = tree_digest(out)
    assert {k: v for k, v in after.items() if not k.endswith(MANIFEST)} == {k: v for k, v in before.items() if not k.endswith(MANIFEST)}


def test_check_reports_an_out_of_date_file_without_writing(copy_of_scenarios: Path, planned: build_fixtures.Plan) -> None:
    target = copy_of_scenarios / "treat-without-delay" / "macrocytosis-mcv-101-positive.expected.json"
    target.write_text("{}\n")
    assert apply(planned, copy_of_scenarios, prune=True, check=True) == ["write treat-without-delay/macrocytosis-mcv-101-positive.expected.json"]
    assert target.read_text() == "{}\n"


# --- the vocabulary -----------------------------------------------------------------------------------


def expand_one(**case: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return expand("test-recommendation", {"name": "c", "description": "d", **case})


def entries(request: dict[str, Any], prefetch: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in request["prefetch"][prefetch]["entry"]]


def test_raw_resources_are_the_escape_hatch() -> None:
    raw = {"resourceType": "Observation", "id": "obs-raw", "status": "final", "code": {"text": "anything"},
           "subject": {"reference": "Patient/pat-c"}, "valueString": "free text"}
    request, _ = expand_one(labs=[{"id": "obs-b12", "kind": "b12", "value": 150, "unit": "pg/mL", "daysAgo": 20}], resources=[raw])
    assert [r["id"] for r in entries(request, "observations")] == ["obs-b12", "obs-raw"]
    assert entries(request, "observations")[1] == raw


def test_vocabulary_entries_build_fhir() -> None:
    request, expected = expand_one(
        hook="order-select", patient={"age": {"years": 25, "daysBeforeBirthday": 1}, "gender": "male"},
        labs=[{"id": "o", "kind": "potassium", "value": 3.2, "unit": "mEq/L", "ucum": "meq/L", "drawn": "20h", "issued": "18h"}],
        conditions=[{"id": "c", "system": "snomed", "code": "386033004", "display": "Neuropathy", "clinicalStatus": "resolved"}],
        medicationRequests=[{"id": "m", "drug": "metformin", "status": "stopped", "authoredDaysAgo": 400,
                             "fhir": {"dispenseRequest": {"numberOfRepeatsAllowed": 1}}}],
        drafts=[{"drug": "pregabalin-300", "dosage": [{"dose": 300, "unit": "mg", "frequency": 3, "period": 1, "periodUnit": "d"}]}],
        cards=[{"topic": "t", "indicator": "info"}])
    assert request["prefetch"]["patient"]["birthDate"] == "2001-06-02" and request["prefetch"]["patient"]["gender"] == "male"
    lab = entries(request, "observations")[0]
    assert lab["effectiveDateTime"] == "2026-05-31T16:00:00Z" and lab["issued"] == "2026-05-31T18:00:00Z"
    assert lab["valueQuantity"] == {"value": 3.2, "unit": "mEq/L", "system": "http://unitsofmeasure.org", "code": "meq/L"}
    condition = entries(request, "conditions")[0]
    assert condition["code"]["coding"][0]["system"] == "http://snomed.info/sct"
    assert condition["clinicalStatus"]["coding"][0]["code"] == "resolved"
    order = entries(request, "medicationRequests")[0]
    assert order["status"] == "stopped" and order["authoredOn"] == "2025-04-27T10:30:00Z"
    assert list(order)[-1] == "dispenseRequest"
    draft = request["context"]["draftOrders"]["entry"][0]["resource"]
    assert draft["id"] == "draft-0" and draft["status"] == "draft" and draft["authoredOn"] == "2026-06-01T12:00:00Z"
    assert draft["dosageInstruction"][0]["timing"]["repeat"] == {"frequency": 3, "period": 1, "periodUnit": "d"}
    assert request["context"]["selections"] == ["MedicationRequest/draft-0"]
    assert expected == {"description": "d", "service": "b12-neuropathy-order-select", "now": "2026-06-01T12:00:00Z",
                        "cards": [{"topic": "t", "indicator": "info"}]}


@pytest.mark.parametrize("case", [
    {"labs": [{"id": "o", "kind": "no-such-lab", "value": 1, "unit": "1"}]},
    {"medicationRequests": [{"id": "m", "drug": "no-such-drug"}]},
    {"labs": [{"id": "o", "kind": "b12", "drawn": "yesterday"}]},
    {"observations": []},  # a misspelt list would silently drop its resources
    {"labs": [{"id": "o", "kind": "b12", "dayAgo": 3}]},  # so would a misspelt field its value
    {"drafts": [{"drug": "metformin", "dosage": [{"doze": 1}]}]},
])
def test_vocabulary_mistakes_are_errors(case: dict[str, Any]) -> None:
    with pytest.raises(VocabularyError):
        expand_one(**case)
