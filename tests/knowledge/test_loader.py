"""A knowledge file that does not load, validate or compile stops start-up, naming file and expression."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from cds_service.knowledge.loader import KnowledgeError, load_knowledge
from cds_service.settings import DEFAULT_KNOWLEDGE_DIR


@pytest.fixture()
def knowledge_copy(tmp_path: Path) -> Path:
    target = tmp_path / "plan_definitions"
    shutil.copytree(DEFAULT_KNOWLEDGE_DIR, target)
    return target


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_shipped_knowledge_loads(knowledge) -> None:
    assert set(knowledge.services) == {"b12-neuropathy-patient-view", "b12-neuropathy-order-select", "b12-neuropathy-order-sign"}
    assert {"folate-without-b12", "maintenance-overdue"} <= set(knowledge.recommendations)


def test_fhirpath_syntax_error_names_file_and_expression(knowledge_copy: Path) -> None:
    path = knowledge_copy / "PlanDefinition-maintenance-overdue.json"
    edit(path, lambda d: d["action"][0]["condition"][0]["expression"].update(expression="%onMaintenance and and"))
    with pytest.raises(KnowledgeError) as error:
        load_knowledge(knowledge_copy)
    message = str(error.value)
    assert "PlanDefinition-maintenance-overdue.json" in message
    assert "action[0].condition[0]" in message
    assert "%onMaintenance and and" in message


def test_unknown_variable_is_rejected(knowledge_copy: Path) -> None:
    path = knowledge_copy / "PlanDefinition-maintenance-overdue.json"
    edit(path, lambda d: d["action"][1]["condition"][0]["expression"].update(expression="%onMaintenence"))
    with pytest.raises(KnowledgeError, match=r"unknown variable %onMaintenence"):
        load_knowledge(knowledge_copy)


def test_unknown_function_is_rejected(knowledge_copy: Path) -> None:
    path = knowledge_copy / "Library-b12-common.json"
    edit(path, lambda d: d["extension"][1]["valueExpression"].update(expression="%recentB12Results.lastest()"))
    with pytest.raises(KnowledgeError, match=r"Library-b12-common.json.*unknown function lastest\(\)"):
        load_knowledge(knowledge_copy)


def test_missing_value_set_is_rejected(knowledge_copy: Path) -> None:
    (knowledge_copy / "valuesets" / "ValueSet-loinc-mma.json").unlink()
    with pytest.raises(KnowledgeError, match=r"Library-b12-common.json: dataRequirement\[2\].*loinc-mma"):
        load_knowledge(knowledge_copy)


def test_missing_activity_definition_is_rejected(knowledge_copy: Path) -> None:
    (knowledge_copy / "ActivityDefinition-hydroxocobalamin-maintenance.json").unlink()
    with pytest.raises(KnowledgeError, match=r"PlanDefinition-maintenance-overdue.json.*hydroxocobalamin-maintenance"):
        load_knowledge(knowledge_copy)


def test_parameter_override_must_exist_and_have_the_declared_type(knowledge_copy: Path, tmp_path: Path) -> None:
    overrides = tmp_path / "site.json"
    overrides.write_text(json.dumps({"resourceType": "Parameters", "parameter": [{"name": "maintenanceOverdueAfterDays", "valueInteger": 120}]}))
    loaded = load_knowledge(knowledge_copy, overrides)
    assert loaded.parameters["maintenanceOverdueAfterDays"].value == 120
    overrides.write_text(json.dumps({"resourceType": "Parameters", "parameter": [{"name": "maintenanceOverdueAfterDays", "valueString": "x"}]}))
    with pytest.raises(KnowledgeError, match="expected valueInteger"):
        load_knowledge(knowledge_copy, overrides)
    overrides.write_text(json.dumps({"resourceType": "Parameters", "parameter": [{"name": "noSuchParameter", "valueInteger": 1}]}))
    with pytest.raises(KnowledgeError, match="no knowledge parameter"):
        load_knowledge(knowledge_copy, overrides)


def test_invalid_fhir_resource_is_rejected(knowledge_copy: Path) -> None:
    edit(knowledge_copy / "ActivityDefinition-hydroxocobalamin-maintenance.json", lambda d: d.update(status=7))
    with pytest.raises(KnowledgeError, match=r"ActivityDefinition-hydroxocobalamin-maintenance.json: not a valid FHIR R4 ActivityDefinition: status"):
        load_knowledge(knowledge_copy)


def test_invalid_json_is_rejected(knowledge_copy: Path) -> None:
    (knowledge_copy / "PlanDefinition-folate-without-b12.json").write_text("{ not json")
    with pytest.raises(KnowledgeError, match=r"PlanDefinition-folate-without-b12.json: not valid JSON"):
        load_knowledge(knowledge_copy)


def test_warning_card_without_override_reasons_is_rejected(knowledge_copy: Path) -> None:
    edit(knowledge_copy / "PlanDefinition-maintenance-overdue.json", lambda d: d["action"][0].pop("extension"))
    with pytest.raises(KnowledgeError, match="warning card needs override reasons"):
        load_knowledge(knowledge_copy)


def test_summary_over_139_characters_is_rejected(knowledge_copy: Path) -> None:
    edit(knowledge_copy / "PlanDefinition-maintenance-overdue.json", lambda d: d["action"][0].update(title="x" * 140))
    with pytest.raises(KnowledgeError, match="longer than 139"):
        load_knowledge(knowledge_copy)


def test_service_must_reference_a_loaded_recommendation(knowledge_copy: Path) -> None:
    edit(knowledge_copy / "PlanDefinition-b12-neuropathy-order-sign.json",
         lambda d: d["action"][0].update(definitionCanonical="http://b12cds.example.org/fhir/PlanDefinition/nope"))
    with pytest.raises(KnowledgeError, match="PlanDefinition-b12-neuropathy-order-sign.json.*nope"):
        load_knowledge(knowledge_copy)


def test_a_third_recommendation_needs_only_json(knowledge_copy: Path) -> None:
    """Adding a recommendation = one PlanDefinition + one line in a service PlanDefinition."""
    rule = {
        "resourceType": "PlanDefinition", "id": "demo-b12-low", "url": "http://b12cds.example.org/fhir/PlanDefinition/demo-b12-low",
        "status": "draft", "title": "Demo", "library": ["http://b12cds.example.org/fhir/Library/b12-common"],
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/plan-definition-type", "code": "eca-rule"}]},
        "action": [{
            "id": "demo", "title": "Serum B12 {{%latestB12Quantity.value}} is low", "priority": "routine",
            "trigger": [{"type": "named-event", "name": "patient-view"}],
            "condition": [{"kind": "applicability", "expression": {"language": "text/fhirpath", "expression": "%b12Low"}}],
            "documentation": [{"type": "documentation", "display": "Demo source"}],
        }],
    }
    (knowledge_copy / "PlanDefinition-demo-b12-low.json").write_text(json.dumps(rule))
    edit(knowledge_copy / "PlanDefinition-b12-neuropathy-patient-view.json", lambda d: d["action"].append(
        {"trigger": [{"type": "named-event", "name": "patient-view"}], "definitionCanonical": rule["url"]}))
    loaded = load_knowledge(knowledge_copy)
    assert "demo-b12-low" in [r.id for r in loaded.services["b12-neuropathy-patient-view"].recommendations]


def test_missing_parameter_is_rejected(knowledge_copy: Path) -> None:
    path = knowledge_copy / "Library-b12-common.json"
    edit(path, lambda d: d.update(parameter=[p for p in d["parameter"] if p["name"] != "labLookbackDays"]))
    with pytest.raises(KnowledgeError, match=r"unknown variable %labLookbackDays"):
        load_knowledge(knowledge_copy)


def test_value_set_referenced_by_alias_must_exist(knowledge_copy: Path) -> None:
    (knowledge_copy / "valuesets" / "ValueSet-rxnorm-pregabalin-products.json").unlink()
    with pytest.raises(KnowledgeError, match=r"(rxnorm-pregabalin-products)"):
        load_knowledge(knowledge_copy)


def test_every_shipped_expression_compiles_and_references_known_names(knowledge) -> None:
    # load_knowledge already refuses anything else; this checks that every rule file was loaded.
    rule_files = [
        path for path in Path(knowledge.source_dir).glob("PlanDefinition-*.json")
        if '"eca-rule"' in path.read_text(encoding="utf-8")
    ]
    assert sorted(knowledge.recommendations) == sorted(path.stem.removeprefix("PlanDefinition-") for path in rule_files)
    assert all(recommendation.cards for recommendation in knowledge.recommendations.values())


def test_the_reader_reads_what_the_expressions_and_functions_use_and_nothing_else(knowledge) -> None:
    reader = knowledge.reader
    assert {"Observation", "Condition", "MedicationRequest", "MedicationAdministration", "Patient"} <= reader.resource_types
    assert {"value", "effectiveDateTime", "coding", "system", "dosageInstruction", "periodUnit", "birthDate"} <= reader.element_names
    # A resource that needs repair (status as a one-item list) is copied with the elements read only;
    # the elements no rule reads are not even looked at (an invalid performer does not matter).
    observation = {"resourceType": "Observation", "id": "o", "status": ["final"], "note": [{"text": "free text"}],
                   "valueQuantity": {"value": 1, "unit": "pg/mL"}, "performer": "not even an array of references"}
    result = reader.read(observation)
    assert result.problems == ()
    assert result.resource == {"resourceType": "Observation", "id": "o", "status": "final", "valueQuantity": {"value": 1, "unit": "pg/mL"}}


def test_a_new_expression_makes_the_reader_read_its_element(knowledge_copy: Path) -> None:
    library = knowledge_copy / "Library-b12-common.json"
    text = library.read_text(encoding="utf-8")
    assert "interpretation" not in text
    data = json.loads(text)
    data["extension"].append({"url": "http://hl7.org/fhir/StructureDefinition/variable", "valueExpression": {
        "name": "flaggedLow", "language": "text/fhirpath", "expression": "%b12Results.where(interpretation.coding.code = 'L')"}})
    library.write_text(json.dumps(data), encoding="utf-8")
    reader = load_knowledge(knowledge_copy).reader
    observation = {"resourceType": "Observation", "status": "final", "interpretation": {"coding": [{"code": "L"}]}}
    assert reader.read(observation).resource == {"resourceType": "Observation", "status": "final", "interpretation": [{"coding": [{"code": "L"}]}]}
    # ... and checks it: before the new expression, an interpretation that is not valid did not matter.
    assert load_knowledge(DEFAULT_KNOWLEDGE_DIR).reader.read(dict(observation, interpretation=5)).problems == ()
    assert [p.element for p in reader.read(dict(observation, interpretation=5)).problems] == ["interpretation[0]"]


def test_reported_unusable_must_name_a_variable_of_its_library(knowledge_copy: Path) -> None:
    path = knowledge_copy / "Library-b12-common.json"
    edit(path, lambda d: d["extension"].append(
        {"url": "http://b12cds.example.org/fhir/StructureDefinition/reported-unusable", "valueString": "unusableResultz"}))
    with pytest.raises(KnowledgeError, match=r"reported-unusable names no variable of this Library: unusableResultz"):
        load_knowledge(knowledge_copy)


def test_names_are_read_from_the_parse_tree_not_the_text(knowledge_copy: Path) -> None:
    # In a string literal, '%x' and 'f()' are text; a call nested in where() is still a call.
    path = knowledge_copy / "PlanDefinition-maintenance-overdue.json"
    edit(path, lambda d: d["action"][1]["condition"][0]["expression"].update(
        expression="%onMaintenance and ('%notAVariable' | 'noSuchFunction()').count() = 2"))
    load_knowledge(knowledge_copy)
    edit(path, lambda d: d["action"][1]["condition"][0]["expression"].update(
        expression="%onMaintenance and %patient.name.where(given.fistt().exists()).empty()"))
    with pytest.raises(KnowledgeError, match=r"unknown function fistt\(\)"):
        load_knowledge(knowledge_copy)
    edit(path, lambda d: d["action"][1]["condition"][0]["expression"].update(expression="%`onMaintenence`"))
    with pytest.raises(KnowledgeError, match=r"unknown variable %onMaintenence"):
        load_knowledge(knowledge_copy)
