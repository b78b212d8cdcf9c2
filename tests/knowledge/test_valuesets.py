"""The ValueSet files in plan_definitions/valuesets/ and the RxNorm generator that writes some of them."""
from __future__ import annotations

import importlib.util
import json
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fhir.resources.R4B.valueset import ValueSet

from cds_service.knowledge.terminology import ValueSetIndex

REPO_ROOT = Path(__file__).resolve().parents[2]
VALUESET_DIR = REPO_ROOT / "plan_definitions" / "valuesets"
GENERATOR = REPO_ROOT / "tools" / "generate_rxnorm_valuesets.py"
GENERATOR_CONFIG = REPO_ROOT / "tools" / "rxnorm_valuesets.json"
# CI checks out the shared reference beside the repo, as ../shared.
RXNORM_CSV = REPO_ROOT.parent / "shared" / "reference" / "rxnorm-products-by-ingredient.csv"

BASE = "http://b12cds.example.org/fhir"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
VALUESET_FILES = sorted(VALUESET_DIR.glob("*.json"))


def vs_url(vs_id: str) -> str:
    return f"{BASE}/ValueSet/{vs_id}"


@lru_cache(maxsize=1)
def _index() -> ValueSetIndex:
    return ValueSetIndex.from_resources(json.loads(p.read_text(encoding="utf-8")) for p in VALUESET_FILES)


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_rxnorm_valuesets", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolves string annotations through sys.modules, so register before exec.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_valueset_directory_is_populated() -> None:
    assert len(VALUESET_FILES) >= 30


@pytest.mark.parametrize("path", VALUESET_FILES, ids=lambda p: p.name)
def test_valueset_file_is_valid_fhir(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    resource: dict[str, Any] = json.loads(text)
    ValueSet.model_validate(resource)
    assert resource["resourceType"] == "ValueSet"
    assert path.name == f"ValueSet-{resource['id']}.json"
    assert resource["url"] == vs_url(resource["id"])
    assert resource["status"] == "active"
    for key in ("version", "name", "title", "description"):
        assert resource.get(key), key
    assert resource["name"][:1].isupper() and resource["name"].isalnum()
    assert text.endswith("\n") and not text.endswith("\n\n")
    # Each file loads on its own, not only as part of the whole directory.
    ValueSetIndex.from_resources([resource])


def test_all_valuesets_load_together() -> None:
    index = _index()
    assert len(index.urls()) == len(VALUESET_FILES)


def test_generated_sets_are_listed_in_config() -> None:
    config = json.loads(GENERATOR_CONFIG.read_text(encoding="utf-8"))
    for entry in config["valuesets"]:
        assert vs_url(entry["id"]) in _index(), entry["id"]


@pytest.mark.parametrize("vs_id", ["rxnorm-b12-products", "rxnorm-b12-injectable-products",
                                   "rxnorm-hydroxocobalamin-products"])
def test_cyanokit_is_not_b12_replacement(vs_id: str) -> None:
    for code in ("700496", "700499"):
        assert not _index().contains(vs_url(vs_id), RX, code)


def test_b12_injectable_products() -> None:
    url = vs_url("rxnorm-b12-injectable-products")
    assert _index().contains(url, RX, "317106")  # hydroxocobalamin 1 MG/ML Injectable Solution
    assert _index().contains(url, RX, "309594")  # vitamin B12 1 MG/ML Injectable Solution
    assert not _index().contains(url, RX, "309593")  # oral tablet
    for ingredient in ("5514", "11248", "29421"):  # form-filtered: no bare ingredients
        assert not _index().contains(url, RX, ingredient)


def test_b12_products_hold_at_least_1_mg_in_every_form_and_no_ingredient_code() -> None:
    url = vs_url("rxnorm-b12-products")
    for code in ("317106", "309594", "309593", "846934"):  # injections, 1 mg tablets and capsules
        assert _index().contains(url, RX, code), code
    for code in ("5514", "11248", "29421", "105686", "313896"):  # ingredients (no dose); 0.05 and 0.5 mg tablets
        assert not _index().contains(url, RX, code), code


def test_folic_acid_alone_vs_combination() -> None:
    folic, b12 = vs_url("rxnorm-folic-acid-products"), vs_url("rxnorm-b12-products")
    assert _index().contains(folic, RX, "198640")  # folic acid 0.4 MG Oral Tablet
    assert not _index().contains(b12, RX, "198640")
    assert _index().contains(folic, RX, "636528")  # folic acid 2.2 MG / vitamin B12 1 MG / vitamin B6 25 MG Oral Tablet
    assert _index().contains(b12, RX, "636528")  # 1 mg of B12 per tablet: folic acid with B12
    # Micrograms of B12 are not B12 treatment: folic acid without adequate B12 (RULES.md rev).
    for code in ("199240", "309606", "348025"):  # 0.5 mg; 0.025 mg with iron; 0.006 mg multivitamin
        assert _index().contains(folic, RX, code), code
        assert not _index().contains(b12, RX, code), code
    assert _index().contains(b12, RX, "259711")  # mecobalamin 0.6 MG / vitamin B12 0.6 MG: 1.2 mg together


def test_b12_route_sets() -> None:
    injectable, nasal = vs_url("rxnorm-b12-injectable-products"), vs_url("rxnorm-b12-nasal-products")
    for code in ("317106", "309594", "2598453", "2001499"):
        assert _index().contains(injectable, RX, code), code
    for code in ("700496", "700499", "309593", "861113"):  # Cyanokit (antidote), oral, nasal
        assert not _index().contains(injectable, RX, code), code
    assert _index().contains(nasal, RX, "861113") and _index().contains(nasal, RX, "861115")
    assert not _index().contains(nasal, RX, "309593")


def test_second_line_pain_set() -> None:
    url = vs_url("rxnorm-second-line-neuropathic-pain-products")
    for code in ("856783", "856834", "856845", "856853", "856762", "856773",  # amitriptyline SCDs
                 "198555", "141868", "1039679",  # topical capsaicin
                 "310431", "308979", "1099870", "835564", "11118", "266856", "40254"):
        assert _index().contains(url, RX, code), code
    assert not _index().contains(url, RX, "704")  # unverified amitriptyline IN
    assert not _index().contains(url, RX, "1992")  # bare capsaicin IN: form unknown
    assert _index().display(url, RX, "856834") == "amitriptyline hydrochloride 25 MG Oral Tablet"


def test_condition_and_lab_sets_spot_checks() -> None:
    icd, sct, loinc = "http://hl7.org/fhir/sid/icd-10-cm", "http://snomed.info/sct", "http://loinc.org"
    idx = _index()
    assert idx.contains(vs_url("condition-b12-deficiency"), icd, "D51.0")
    assert not idx.contains(vs_url("condition-b12-deficiency"), icd, "D52.0")
    assert idx.contains(vs_url("condition-neurological-involvement"), icd, "G62.9")
    assert idx.contains(vs_url("condition-ckd-stage-3-5"), icd, "N18.31")
    assert not idx.contains(vs_url("condition-ckd-stage-3-5"), icd, "N18.2")
    assert idx.contains(vs_url("condition-b12-deficiency"), sct, "84027009")
    assert idx.contains(vs_url("loinc-b12"), loinc, "14685-2")
    assert not idx.contains(vs_url("loinc-b12"), loinc, "16695-9")  # unverified


def test_generator_is_deterministic_and_matches_committed_files(tmp_path: Path) -> None:
    if not RXNORM_CSV.exists():
        pytest.skip(f"RxNorm extract not available at {RXNORM_CSV}")
    generator = _load_generator()
    first, second = tmp_path / "a", tmp_path / "b"
    assert generator.main([str(RXNORM_CSV), "--config", str(GENERATOR_CONFIG), "--out", str(first)]) == 0
    assert generator.main([str(RXNORM_CSV), "--config", str(GENERATOR_CONFIG), "--out", str(second)]) == 0
    produced = sorted(p.name for p in first.iterdir())
    assert produced == sorted(p.name for p in second.iterdir())
    assert produced
    for name in produced:
        text = (first / name).read_text(encoding="utf-8")
        assert text == (second / name).read_text(encoding="utf-8"), name
        committed = VALUESET_DIR / name
        assert committed.exists(), f"{name} not committed; run tools/generate_rxnorm_valuesets.py"
        assert committed.read_text(encoding="utf-8") == text, f"{name} is stale; re-run the generator"


def test_generator_rejects_unknown_ingredient(tmp_path: Path) -> None:
    if not RXNORM_CSV.exists():
        pytest.skip(f"RxNorm extract not available at {RXNORM_CSV}")
    generator = _load_generator()
    config = json.loads(GENERATOR_CONFIG.read_text(encoding="utf-8"))
    config["valuesets"] = [{"id": "x", "title": "x", "summary": "x",
                            "sources": [{"ingredients": ["999999999"]}]}]
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps(config), encoding="utf-8")
    out = tmp_path / "out"
    assert generator.main([str(RXNORM_CSV), "--config", str(bad), "--out", str(out)]) == 1
    assert not out.exists()  # nothing written on a config error
