"""Expand the fixture cases (tools/fixtures/cases/<recommendation>.json) into fixture pairs.

Each case file holds the cases of one recommendation in the vocabulary of tools/fixtures/README.md:
a synthetic patient's chart and the cards a clinician expects, written by hand from RULES.md (never
produced by running the engine). The expander writes fhir_fixtures/scenarios/<recommendation>/
<case>.request.json and <case>.expected.json.

    python tools/build_fixtures.py                      # write every case file's pairs
    python tools/build_fixtures.py neuropathic-pain     # only that recommendation
    python tools/build_fixtures.py --check              # write nothing; exit 1 if a file would change

What it wrote is listed in a manifest, <folder>/.generated. It overwrites or deletes only files listed
there: a file it did not write (a hand-written case, a whole hand-written folder such as
order-not-checked/) is never touched, and a case whose file name collides with one is an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixtures.common import OUT, ROOT  # noqa: E402
from fixtures.vocabulary import expand, load, recommendations  # noqa: E402

MANIFEST = ".generated"
MANIFEST_HEADER = "# Written by tools/build_fixtures.py from tools/fixtures/cases/; it rewrites or deletes only the files listed here.\n"

Plan = dict[str, dict[str, str]]  # folder -> file name -> content


def dump(document: dict[str, object]) -> str:
    return json.dumps(document, indent=2) + "\n"


def plan(names: list[str]) -> Plan:
    """Every file the case files of `names` produce, by folder."""
    planned: Plan = {}
    for recommendation in names:
        files = planned.setdefault(recommendation, {})
        for case in load(recommendation):
            request, expected = expand(recommendation, case)
            for suffix, document in (("request", request), ("expected", expected)):
                file_name = f"{case['name']}.{suffix}.json"
                if file_name in files:
                    raise SystemExit(f"{recommendation}: two cases named {case['name']!r}")
                files[file_name] = dump(document)
    return planned


def written_before(folder: Path) -> set[str]:
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return set()
    return {line for line in manifest.read_text().splitlines() if line and not line.startswith("#")}


def apply(planned: Plan, out: Path, prune: bool, check: bool = False) -> list[str]:
    """Write `planned` under `out`, delete what an earlier run wrote that no case produces any more.
    prune: also empty the folders whose case file is gone (a full run). Returns the changes (made,
    or with check=True that would be made); refuses, changing nothing, to overwrite a file it did not write."""
    folders = set(planned)
    if prune:
        folders |= {p.parent.name for p in out.glob(f"*/{MANIFEST}")}
    collisions = [f"{folder}/{name}" for folder in sorted(folders) for name in planned.get(folder, {})
                  if (out / folder / name).exists() and name not in written_before(out / folder)]
    if collisions:
        shown = ", ".join(collisions[:10]) + (f" and {len(collisions) - 10} more" if len(collisions) > 10 else "")
        raise SystemExit(f"refusing to overwrite {len(collisions)} file(s) this tool did not write (hand-written?): {shown}")
    changes: list[str] = []
    for folder_name in sorted(folders):
        folder, files = out / folder_name, planned.get(folder_name, {})
        previous = written_before(folder)
        for name, content in sorted(files.items()):
            path = folder / name
            if not path.exists() or path.read_text() != content:
                changes.append(f"write {folder_name}/{name}")
                if not check:
                    folder.mkdir(parents=True, exist_ok=True)
                    path.write_text(content)
        for name in sorted(previous - set(files)):
            if (folder / name).exists():
                changes.append(f"delete {folder_name}/{name}")
                if not check:
                    (folder / name).unlink()
        manifest = MANIFEST_HEADER + "".join(f"{name}\n" for name in sorted(files))
        current = (folder / MANIFEST).read_text() if (folder / MANIFEST).exists() else None
        if files and current != manifest:
            changes.append(f"write {folder_name}/{MANIFEST}")
            if not check:
                (folder / MANIFEST).write_text(manifest)
        if not files and (folder / MANIFEST).exists():
            changes.append(f"delete {folder_name}/{MANIFEST}")
            if not check:
                (folder / MANIFEST).unlink()
                if not any(folder.iterdir()):
                    folder.rmdir()
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recommendations", nargs="*", help="case files to expand (default: all)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if the fixtures are out of date")
    args = parser.parse_args(argv)
    known = recommendations()
    unknown = set(args.recommendations) - set(known)
    if unknown:
        raise SystemExit(f"no case file(s) {sorted(unknown)}; case files: {known}")
    planned = plan(args.recommendations or known)
    changes = apply(planned, OUT, prune=not args.recommendations, check=args.check)
    pairs = sum(len(files) for files in planned.values()) // 2
    for change in changes:
        print(change)
    verb = "would change" if args.check else "changed"
    print(f"{pairs} fixture pairs from {len(planned)} case files; {verb} {len(changes)} files under {OUT.relative_to(ROOT)}")
    return 1 if args.check and changes else 0


if __name__ == "__main__":
    sys.exit(main())
