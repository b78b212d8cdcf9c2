"""Write the clinical scenario fixture pairs under fhir_fixtures/scenarios/.

Each module in tools/fixtures/ holds the cases of one recommendation: a realistic CDS Hooks
request (context + full prefetch) for a synthetic patient, and the cards a clinician expects,
written by hand from RULES.md (never produced by running the engine).

    python tools/build_fixtures.py          # rewrite every fixture pair
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures  # noqa: E402
from fixtures.common import NOW, OUT, ROOT, SERVICES, request_for  # noqa: E402


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    count = 0
    for module_info in sorted(pkgutil.iter_modules(fixtures.__path__), key=lambda m: m.name):
        if module_info.name == "common":
            continue
        module = importlib.import_module(f"fixtures.{module_info.name}")
        for case in module.cases():
            folder = OUT / case.recommendation
            folder.mkdir(parents=True, exist_ok=True)
            expected = {
                "description": case.description,
                "service": SERVICES[case.hook],
                "now": NOW.isoformat().replace("+00:00", "Z"),
                "cards": case.cards,
            }
            (folder / f"{case.name}.request.json").write_text(json.dumps(request_for(case), indent=2) + "\n")
            (folder / f"{case.name}.expected.json").write_text(json.dumps(expected, indent=2) + "\n")
            count += 1
    print(f"wrote {count} fixture pairs to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
