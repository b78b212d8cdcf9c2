"""Write the clinical scenario fixture pairs under fhir_fixtures/scenarios/.

Each module in tools/fixtures/ holds the cases of one recommendation: a realistic CDS Hooks
request (context + full prefetch) for a synthetic patient, and the cards a clinician expects,
written by hand from RULES.md (never produced by running the engine).

    python tools/build_fixtures.py                      # rewrite every generated fixture pair
    python tools/build_fixtures.py neuropathic_pain     # only that module's recommendation folders

It replaces only the folders its modules write: hand-written scenario folders
(e.g. ``order-not-checked/``) are never touched.
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


def main(only: list[str]) -> None:
    names = [m.name for m in pkgutil.iter_modules(fixtures.__path__) if m.name != "common"]
    unknown = set(only) - set(names)
    if unknown:
        raise SystemExit(f"no fixture module(s) {sorted(unknown)}; modules: {sorted(names)}")
    count = 0
    cleared: set[Path] = set()
    for name in sorted(only or names):
        module = importlib.import_module(f"fixtures.{name}")
        for case in module.cases():
            folder = OUT / case.recommendation
            if folder not in cleared:
                shutil.rmtree(folder, ignore_errors=True)
                cleared.add(folder)
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
    main(sys.argv[1:])
