"""CPU per hook call on never-seen charts, for this tree and a baseline commit, in one run.

    .venv/bin/python -m bench.cpu_per_call                       # baseline 9771d23 (before the reader)
    .venv/bin/python -m bench.cpu_per_call --baseline <git ref> --size 100 --calls 200

Each call posts a complete CDS Hooks request (``bench/workload.py``, prefetch of ``--size``
resources) to the app in process (Flask test client, authentication off) and counts the CPU
time of the process (``time.process_time``) around it. Every call is a chart never seen before:
every resource gets a new ``meta.versionId`` per call, so nothing remembered by content (the
baseline's validation cache) can help. The baseline tree is exported with ``git archive`` into a temporary
folder and imported instead of this one (``PYTHONPATH``), with the same virtualenv; both trees
run alternately, a round of each at a time, so that the machine's noise falls on both.

Writes ``bench/results/cpu-per-call.json`` and prints a table with the ratio (this / baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ("patient-view", "order-select", "order-sign")
DEFAULT_BASELINE = "9771d23"  # the last commit that validated whole resources with fhir.resources


def measure(size: int, calls: int, hooks: tuple[str, ...]) -> dict[str, list[float]]:
    """In the current interpreter (whichever cds_service it imports): CPU ms per call, per hook."""
    import importlib.util

    import orjson

    from cds_service.app import create_app

    # This tree's workload, whichever tree's cds_service is imported.
    spec = importlib.util.spec_from_file_location("bench_workload", Path(__file__).with_name("workload.py"))
    assert spec is not None and spec.loader is not None
    workload = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(workload)
    SERVICES, make_request = workload.SERVICES, workload.make_request

    import gc

    app = create_app()
    client = app.test_client()
    gc.collect()
    gc.freeze()  # as ``cds-service serve`` does before forking its workers
    results: dict[str, list[float]] = {}
    for hook in hooks:
        template = orjson.dumps(make_request(size, hook)).decode()
        path = f"/cds-services/{SERVICES[hook]}"
        client.post(path, data=template, content_type="application/json")  # warm: first-call costs are not per-call costs
        samples = []
        for call in range(calls):
            body = _never_seen(template, f"{os.getpid()}-{call}")
            started = time.process_time()
            response = client.post(path, data=body, content_type="application/json")
            samples.append((time.process_time() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{hook}: HTTP {response.status_code}: {response.get_data(as_text=True)[:300]}")
        results[hook] = samples
    return results


def _never_seen(template: str, salt: str) -> bytes:
    # Every resource gets its own meta.versionId: the same clinical content, JSON never seen before.
    return template.replace('"resourceType":', f'"meta":{{"versionId":"{salt}"}},"resourceType":').encode()


def _export(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref], check=True, capture_output=True).stdout
    target = into / "baseline"
    target.mkdir()
    with tempfile.TemporaryFile() as handle:
        handle.write(archive)
        handle.seek(0)
        with tarfile.open(fileobj=handle) as tar:
            tar.extractall(target, filter="data")
    return target


def _run_tree(tree: Path, size: int, calls: int, state_dir: Path) -> dict[str, list[float]]:
    env = dict(os.environ, PYTHONPATH=str(tree), CDS_INSECURE_DISABLE_AUTH="true",
               CDS_STATE_DIR=str(state_dir), CDS_KNOWLEDGE_DIR=str(tree / "plan_definitions"), CDS_LOG_LEVEL="ERROR")
    # PYTHONPATH puts the tree first: its cds_service is imported; this file and the workload are this tree's.
    command = [sys.executable, str(Path(__file__).resolve()), "--measure", "--size", str(size), "--calls", str(calls)]
    done = subprocess.run(command, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--calls", type=int, default=150, help="calls per hook per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # one tree, in this process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.size, args.calls, HOOKS)))
        return
    samples: dict[str, dict[str, list[float]]] = {"baseline": {h: [] for h in HOOKS}, "this": {h: [] for h in HOOKS}}
    with tempfile.TemporaryDirectory() as scratch:
        baseline = _export(args.baseline, Path(scratch))
        for round_number in range(args.rounds):
            for name, tree in (("baseline", baseline), ("this", ROOT)):
                state = Path(scratch) / f"state-{name}-{round_number}"
                state.mkdir()
                for hook, values in _run_tree(tree, args.size, args.calls, state).items():
                    samples[name][hook].extend(values)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows: list[dict[str, Any]] = []
    print(f"CPU per call, never-seen {args.size}-resource chart, {args.rounds} x {args.calls} calls per hook (median, mean ms)")
    print(f"| hook | baseline {args.baseline} | this tree ({head}) | ratio (median) |")
    print("|---|---|---|---|")
    for hook in HOOKS:
        before, after = samples["baseline"][hook], samples["this"][hook]
        row = {
            "hook": hook,
            "baseline_median_ms": statistics.median(before), "baseline_mean_ms": statistics.fmean(before),
            "this_median_ms": statistics.median(after), "this_mean_ms": statistics.fmean(after),
        }
        row["ratio_median"] = row["this_median_ms"] / row["baseline_median_ms"]
        rows.append(row)
        print(f"| {hook} | {row['baseline_median_ms']:.2f} ({row['baseline_mean_ms']:.2f}) | "
              f"{row['this_median_ms']:.2f} ({row['this_mean_ms']:.2f}) | {row['ratio_median']:.2f} |")
    out = ROOT / "bench" / "results" / "cpu-per-call.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"baseline": args.baseline, "this": head, "size": args.size, "calls": args.calls,
                               "rounds": args.rounds, "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
