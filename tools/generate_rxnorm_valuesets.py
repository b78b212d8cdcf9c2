#!/usr/bin/env python3
"""Generate the RxNorm product ValueSets from the RxNorm Oct-2025 per-ingredient extract.

CDS Hooks order requests carry SCD/SBD product codes, not ingredient codes, so each
medication ValueSet enumerates the products of its ingredients. What goes into each set is
data (tools/rxnorm_valuesets.json); this script only applies it. Output is deterministic
(sorted codes, 2-space JSON, trailing newline) so re-running it produces no diff.

Usage: generate_rxnorm_valuesets.py [CSV] [--config PATH] [--out DIR]
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CSV = REPO_ROOT.parent / "shared" / "reference" / "rxnorm-products-by-ingredient.csv"
DEFAULT_CONFIG = Path(__file__).resolve().parent / "rxnorm_valuesets.json"
DEFAULT_OUT = REPO_ROOT / "plan_definitions" / "valuesets"

CANONICAL_BASE = "http://b12cds.example.org/fhir"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CSV_COLUMNS = (
    "ingredient_name", "ingredient_rxcui", "ingredient_tty",
    "product_tty", "product_rxcui", "product_name",
)


class ConfigError(ValueError):
    """The config refers to something the CSV does not have, or is malformed."""


@dataclass(frozen=True)
class Row:
    ingredient_name: str
    ingredient_rxcui: str
    ingredient_tty: str
    product_tty: str
    product_rxcui: str
    product_name: str


def load_rows(csv_path: Path) -> list[Row]:
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = set(CSV_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ConfigError(f"{csv_path}: missing columns {sorted(missing)}")
        return [Row(**{c: (r[c] or "").strip() for c in CSV_COLUMNS}) for r in reader]


def pascal_case(identifier: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in identifier.replace("_", "-").split("-"))


def _code_key(code: str) -> tuple[int, str]:
    # RxCUIs are integers: sort numerically, fall back to text for anything else.
    return (int(code), code) if code.isdigit() else (sys.maxsize, code)


def _strength_mg(product_name: str, ingredient_names: Sequence[str]) -> Decimal:
    """Total mg per dose unit (tablet, mL, actuation) of the named ingredients in an RxNorm name."""
    names = "|".join(re.escape(name) for name in ingredient_names)
    pattern = re.compile(rf"(?:^|/ |HR )(?:{names}) (\d+(?:\.\d+)?) (MG|MCG)\b", re.IGNORECASE)
    total = Decimal(0)
    for value, unit in pattern.findall(product_name):
        total += Decimal(value) / (1000 if unit.upper() == "MCG" else 1)
    return total


def _matches_form(name: str, markers: Sequence[str]) -> bool:
    return any(marker in name for marker in markers)


def build_valueset(
    entry: Mapping[str, Any],
    rows: Sequence[Row],
    dose_forms: Mapping[str, Sequence[str]],
    version: str,
) -> dict[str, Any]:
    vs_id = entry["id"]
    by_ingredient: dict[str, list[Row]] = {}
    for row in rows:
        by_ingredient.setdefault(row.ingredient_rxcui, []).append(row)

    concepts: dict[str, str] = {}
    described: list[str] = []
    for source in entry["sources"]:
        form = source.get("dose_form")
        if form is not None and form not in dose_forms:
            raise ConfigError(f"{vs_id}: unknown dose_form {form!r}")
        markers = dose_forms.get(form, ()) if form else ()
        names = []
        for rxcui in source["ingredients"]:
            ing_rows = by_ingredient.get(rxcui)
            if not ing_rows:
                # A typo here would silently shrink the set, so fail loudly.
                raise ConfigError(f"{vs_id}: ingredient {rxcui} not in the CSV")
            first = ing_rows[0]
            names.append(f"{first.ingredient_name} {rxcui} ({first.ingredient_tty})")
            if source.get("include_ingredient_codes", True):
                concepts[rxcui] = first.ingredient_name
            for row in ing_rows:
                if markers and not _matches_form(row.product_name, markers):
                    continue
                # RxNorm names multi-ingredient products "a X MG / b Y MG ...".
                if source.get("single_ingredient") and " / " in row.product_name:
                    continue
                minimum = source.get("min_strength_mg")
                if minimum is not None and _strength_mg(row.product_name, minimum["of"]) < Decimal(str(minimum["mg"])):
                    continue
                concepts[row.product_rxcui] = row.product_name
        qualifiers = ([f"{form} dose forms only"] if form else []) + (["single-ingredient products only"] if source.get("single_ingredient") else [])
        if source.get("min_strength_mg") is not None:
            minimum = source["min_strength_mg"]
            qualifiers.append(f"products with at least {minimum['mg']} mg of {' + '.join(minimum['of'])} per dose unit only")
        described.append(", ".join(names) + (f" [{'; '.join(qualifiers)}]" if qualifiers else ""))

    excluded = [str(c) for c in entry.get("exclude_products", ())]
    known_products = {row.product_rxcui for row in rows}
    for code in excluded:
        if code not in known_products:
            raise ConfigError(f"{vs_id}: excluded product {code} not in the CSV")
        concepts.pop(code, None)

    extras = entry.get("extra_concepts", ())
    for extra in extras:
        if extra["code"] in concepts:
            raise ConfigError(f"{vs_id}: extra concept {extra['code']} already generated from the CSV")
        concepts[extra["code"]] = extra["display"]

    if not concepts:
        raise ConfigError(f"{vs_id}: no concepts")

    description = (
        f"{entry['summary']} Ingredients: {'; '.join(described)}."
        + (f" Excluded products: {', '.join(excluded)}." if excluded else "")
        + (
            " Added from clinical-knowledge.md (not in the CSV): "
            + "; ".join(f"{e['code']} ({e['source']})" for e in extras) + "."
            if extras else ""
        )
        + f" {len(concepts)} codes. Generated by tools/generate_rxnorm_valuesets.py from the RxNorm"
        " Oct-2025 extract (shared/reference/rxnorm-products-by-ingredient.csv); do not edit by hand."
    )
    return {
        "resourceType": "ValueSet",
        "id": vs_id,
        "url": f"{CANONICAL_BASE}/ValueSet/{vs_id}",
        "version": version,
        "name": pascal_case(vs_id),
        "title": entry["title"],
        "status": "active",
        "description": description,
        "compose": {
            "include": [
                {
                    "system": RXNORM,
                    "concept": [
                        {"code": code, "display": concepts[code]}
                        for code in sorted(concepts, key=_code_key)
                    ],
                }
            ]
        },
    }


def render(resource: Mapping[str, Any]) -> str:
    return json.dumps(resource, indent=2, ensure_ascii=False) + "\n"


def generate(csv_path: Path, config_path: Path, out_dir: Path) -> list[Path]:
    config = json.loads(config_path.read_text(encoding="utf-8"))
    rows = load_rows(csv_path)
    ids = [entry["id"] for entry in config["valuesets"]]
    if len(ids) != len(set(ids)):
        raise ConfigError("duplicate ValueSet ids in config")
    # Build everything before writing so a config error leaves the directory untouched.
    rendered = {
        entry["id"]: render(build_valueset(entry, rows, config["dose_forms"], config["rxnorm_version"]))
        for entry in config["valuesets"]
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for vs_id, text in rendered.items():
        path = out_dir / f"ValueSet-{vs_id}.json"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        written = generate(args.csv, args.config, args.out)
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
