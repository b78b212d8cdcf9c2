"""Turn a benchmark run (``bench/results/results.json``) into tables, a plot and the docs section."""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
HOOKS = ("patient-view", "order-select", "order-sign")

# Stack classification for the profile: the first pattern found anywhere in a sample's stack wins.
AREAS = (
    ("FHIR resource reading (fhir/reader.py, msgspec fast path)", ("fhir/reader.py", "fhir/fast_path.py", "msgspec")),
    ("FHIRPath evaluation (fhirpathpy + custom functions)", ("fhirpathpy", "knowledge/functions.py", "cds_service/fhirpath/")),
    ("JWT verification + replay cache", ("security/",)),
    ("request JSON Schema validation", ("jsonschema", "protocol/validation.py")),
    ("record building and input selection", ("knowledge/record.py", "fhir/gather.py", "terminology.py", "protocol/drafts.py")),
    ("engine bookkeeping, card text and mapping", ("knowledge/",)),
    ("JSON parsing / serialising", ("orjson", "_read_json", "jsonio.py")),
    ("HTTP server, Flask, logging", ("gunicorn", "granian", "a2wsgi", "werkzeug", "flask", "logging")),
)


def ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def ratio(value: float, floor: float) -> str:
    return f"{value / floor:.1f}x" if floor else "-"


def summarise_profile(raw: Path) -> dict[str, Any]:
    """Self time by function and time by area, from py-spy's raw (collapsed) output."""
    leaf: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        leaf[_short(frames[-1])] += count
        for area, patterns in AREAS:
            if any(p in stack for p in patterns):
                areas[area] += count
                break
        else:
            areas["other (interpreter, stdlib)"] += count
    return {
        "samples": total,
        "areas": [(area, count / total) for area, count in areas.most_common()] if total else [],
        "self": [(name, count / total) for name, count in leaf.most_common(15)] if total else [],
    }


def _short(frame: str) -> str:
    match = re.match(r"(.*?) \((.*?):\d+\)$", frame)
    if not match:
        return frame
    name, path = match.groups()
    path = re.sub(r".*site-packages/", "", path)
    path = re.sub(r".*/cds_service/", "cds_service/", path)
    return f"{name} ({path})"


def _run(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    return results["runs"].get(name)


def tables(results: dict[str, Any]) -> str:
    runs = results["runs"]
    m = results["machine"]
    floor32 = runs["floor-c32"]
    floor1 = runs["floor-c1"]
    f32_p50, f32_rps, f1_p50 = floor32["latency_us"]["p50"], floor32["rps"], floor1["latency_us"]["p50"]
    out: list[str] = []
    w = out.append
    w(f"Run of {m['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_mib'] // 1024} GiB, {m['os']}, Python {m['python']}, "
      f"{m['wrk']}; commit {m['commit']}; {results['workers']} workers, authentication on (ES384 JWT per call); "
      f"load average at start {', '.join(f'{x:.2f}' for x in m['load_at_start'])}. Total run time {results['elapsed_s'] / 60:.1f} min.")
    if results.get("quick"):
        w("\n**Quick run (`--quick`): shorter runs, sizes up to 1,000; not for the record.**")
    w("")
    w(f"**Floor** (GET /healthz, same server and workers, no JWT): {f32_rps:,.0f} req/s, p50 {ms(f32_p50)} ms, "
      f"p99 {ms(floor32['latency_us']['p99'])} ms at 32 connections; p50 {ms(f1_p50)} ms at 1 connection.")
    w("")

    w("### Targets")
    w("")
    w("Each figure twice: **new patient** = every call another patient, so no resource was seen before "
      "(the cold path); **same chart** = the same request again, as an EHR re-sends a chart across the hooks of a visit "
      "(FHIR validation results are remembered by content). Ratios are to the floor measured in the same run.")
    w("")
    w("| target | new patient | same chart | ratio to floor (new / same) | met (new / same) |")
    w("|---|---|---|---|---|")
    for hook in HOOKS:
        cold, warm = _run(results, f"{hook}-100-c32"), _run(results, f"{hook}-100-c32-repeat")
        paced_cold, paced_warm = _run(results, f"{hook}-100-paced"), _run(results, f"{hook}-100-paced-repeat")
        if not cold:
            continue
        warm = warm or cold
        if paced_cold:
            paced_warm = paced_warm or paced_cold
            for label, key, limit, floor_value in (("p50 <= 10 ms", "p50", 10000, f1_p50), ("p99 <= 30 ms", "p99", 30000, floor1["latency_us"]["p99"])):
                a, b = paced_cold["latency_us"][key], paced_warm["latency_us"][key]
                w(f"| {hook}, 100 resources, 32 connections offering 400 req/s: {label} | {ms(a)} ms ({paced_cold['rps']:,.0f} req/s served) | "
                  f"{ms(b)} ms ({paced_warm['rps']:,.0f} req/s served) | {ratio(a, floor_value)} / {ratio(b, floor_value)} | {_ok(a <= limit)} / {_ok(b <= limit)} |")
        w(f"| {hook}, 100 resources, 32 connections as fast as served: >= 400 req/s | {cold['rps']:,.0f} req/s | {warm['rps']:,.0f} req/s | "
          f"{cold['rps'] / f32_rps:.3f} / {warm['rps'] / f32_rps:.3f} of floor | {_ok(cold['rps'] >= 400)} / {_ok(warm['rps'] >= 400)} |")
        for label, key, limit in (("p50 <= 10 ms", "p50", 10000), ("p99 <= 30 ms", "p99", 30000)):
            a, b = cold["latency_us"][key], warm["latency_us"][key]
            w(f"| {hook}, 100 resources, 32 connections as fast as served: {label} (queueing: 32 / throughput) | {ms(a)} ms | {ms(b)} ms | "
              f"{ratio(a, f32_p50 if key == 'p50' else floor32['latency_us']['p99'])} / {ratio(b, f32_p50 if key == 'p50' else floor32['latency_us']['p99'])} | "
              f"{_ok(a <= limit)} / {_ok(b <= limit)} |")
    for hook in HOOKS:
        cold, warm = _run(results, f"{hook}-10000-c1"), _run(results, f"{hook}-10000-c1-repeat")
        if cold:
            warm = warm or cold
            a, b = cold["latency_us"]["p50"], warm["latency_us"]["p50"]
            w(f"| {hook}, 10,000 resources, c=1: p50 <= 150 ms | {ms(a)} ms | {ms(b)} ms | {ratio(a, f1_p50)} / {ratio(b, f1_p50)} | "
              f"{_ok(a <= 150000)} / {_ok(b <= 150000)} |")
    for hook, value in _growth(results).items():
        w(f"| {hook}: cost linear in the record (marginal ms per 1,000 resources: 100->1,000 vs 1,000->10,000) | {value} | - | - | "
          f"see the curve |")
    for hook in HOOKS:
        run = _run(results, f"{hook}-fallback-c1")
        if run:
            p50 = run["latency_us"]["p50"]
            w(f"| {hook}, fallback, 6 queries at 50 ms: total <= 120 ms (p50, c=1) | - | {ms(p50)} ms | {ratio(p50, f1_p50)} | {_ok(p50 <= 120000)} |")
    mem = memory(results)
    if mem:
        end = max(mem["rss_at_end_mib"].values(), default=0)
        start = {pid: v for pid, v in mem["rss_at_start_mib"].items()}
        growth_mib = max((mem["rss_at_end_mib"][pid] - start.get(pid, mem["rss_at_end_mib"][pid]) for pid in mem["rss_at_end_mib"]), default=0)
        w(f"| RSS per worker < 200 MB after {mem['requests_at_end']:,} calls of the 100-resource patient | {end:.0f} MiB (largest worker) | - | - | {_ok(end < 200)} |")
        w(f"| no RSS growth over those calls ({mem['requests_at_start']:,} -> {mem['requests_at_end']:,}) | {growth_mib:+.1f} MiB | - | - | "
          f"{_ok(growth_mib < 5)} |")
        after_big = max((results.get("rss_end_mib") or {}).values(), default=0)
        if after_big:
            w(f"| (for information) RSS after the 10,000-resource calls too | {after_big:.0f} MiB (largest worker) | - | - | "
              f"{_ok(after_big < 200)} |")
    w("")

    w("### 100-resource patient, 32 connections")
    w("")
    w("*As fast as served*: each connection sends its next call as soon as the last is answered, so the server is saturated and "
      "latency is mostly queueing (about 32 / throughput; the floor is measured the same way). *400 req/s offered*: each "
      "connection pauses a random time between calls so that the 32 together offer about 400 req/s; latency is then service "
      "time plus the queueing that load causes (x floor: against the floor at 1 connection).")
    w("")
    w("| hook | calls | req/s | of floor | p50 ms | x floor | p90 ms | p99 ms | x floor | max ms | errors |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    w(f"| floor (GET /healthz) | - | {f32_rps:,.0f} | 1.000 | {ms(f32_p50)} | 1.0x | {ms(floor32['latency_us']['p90'])} | "
      f"{ms(floor32['latency_us']['p99'])} | 1.0x | {ms(floor32['latency_us']['max'])} | {floor32['errors']} |")
    for hook in HOOKS:
        for suffix, label in (("c32", "new patient, as fast as served"), ("c32-repeat", "same chart, as fast as served"),
                              ("paced", "new patient, 400 req/s offered"), ("paced-repeat", "same chart, 400 req/s offered")):
            run = _run(results, f"{hook}-100-{suffix}")
            if run:
                lat = run["latency_us"]
                f50, f99 = (f1_p50, floor1["latency_us"]["p99"]) if "paced" in suffix else (f32_p50, floor32["latency_us"]["p99"])
                w(f"| {hook} | {label} | {run['rps']:,.0f} | {run['rps'] / f32_rps:.3f} | {ms(lat['p50'])} | {ratio(lat['p50'], f50)} | "
                  f"{ms(lat['p90'])} | {ms(lat['p99'])} | {ratio(lat['p99'], f99)} | {ms(lat['max'])} | {run['errors']} |")
    w("")

    w("### Latency against record size (1 connection)")
    w("")
    w("| hook | resources | calls | request MB | req/s | p50 ms | x floor | p99 ms | cards |")
    w("|---|---|---|---|---|---|---|---|---|")
    w(f"| floor (GET /healthz) | - | - | - | {floor1['rps']:,.0f} | {ms(f1_p50)} | 1.0x | {ms(floor1['latency_us']['p99'])} | - |")
    sizes = _sizes(results["runs"])
    for hook in HOOKS:
        for size in sizes:
            for suffix, label in (("", "new patient"), ("-repeat", "same chart")):
                run = _run(results, f"{hook}-{size}-c1{suffix}")
                if run:
                    lat = run["latency_us"]
                    mb = results["workload_bytes"].get(f"{hook}-{size}", 0) / 1e6
                    w(f"| {hook} | {size:,} | {label} | {mb:.2f} | {run['rps']:,.1f} | {ms(lat['p50'])} | {ratio(lat['p50'], f1_p50)} | "
                      f"{ms(lat['p99'])} | {len(results['cards'].get(f'{hook}-{size}', []))} |")
    w("")

    w("### Fallback: only the Patient prefetched, six searches against a FHIR stand-in answering after 50 ms")
    w("")
    w("The stand-in serves the 100-resource chart (the same resources every call). x floor: against the floor at the same "
      "number of connections (32 for c=8).")
    w("")
    w("| hook | connections | req/s | p50 ms | x floor | p99 ms |")
    w("|---|---|---|---|---|---|")
    for name in [f"{hook}-fallback-c1" for hook in HOOKS] + ["patient-view-fallback-c8"]:
        run = _run(results, name)
        if run:
            lat = run["latency_us"]
            base = f1_p50 if run["connections"] == 1 else f32_p50
            w(f"| {name.split('-fallback')[0]} | {run['connections']} | {run['rps']:,.1f} | {ms(lat['p50'])} | {ratio(lat['p50'], base)} | {ms(lat['p99'])} |")
    w("")

    if mem:
        w("### Memory (worker RSS, MiB)")
        w("")
        early = f"at {mem['requests_early']:,} calls: {_rss(mem['rss_early_mib'])}; " if "requests_early" in mem else ""
        w(f"Idle after start: {_rss(results.get('rss_idle_mib'))}; before load: {_rss(results.get('rss_before_load_mib'))}; "
          f"{early}at {mem['requests_at_start']:,} calls: {_rss(mem['rss_at_start_mib'])}; at {mem['requests_at_end']:,} calls "
          f"(end of the 100-resource runs): {_rss(mem['rss_at_end_mib'])}; at the end of the run (after the 10,000-resource "
          f"calls, whose parse alone needs ~60 MB that Python keeps for reuse): {_rss(results.get('rss_end_mib'))}.")
        w("")

    stages = results.get("stages")
    if stages:
        w("### In-process stages (pytest-benchmark medians, ms; one core, no HTTP)")
        w("")
        auth = stages.get("auth", {}).get("auth", {}).get("median_ms")
        if auth is not None:
            w(f"JWT verification (ES384 + replay-cache insert): {auth:.2f} ms per call.")
            w("")
        w("| workload | parse | validate | record | fhir (reader: record + drafts) | engine | cards | **pipeline, new chart** | pipeline, same chart |")
        w("|---|---|---|---|---|---|---|---|---|")
        for key, row in stages.items():
            if key == "auth":
                continue
            cells = [f"{row[s]['median_ms']:.2f}" if s in row else "-" for s in ("parse", "validate", "record", "fhir", "engine", "cards")]
            total = f"**{row['pipeline']['median_ms']:.2f}**" if "pipeline" in row else "-"
            repeat = f"{row['pipeline-repeat']['median_ms']:.2f}" if "pipeline-repeat" in row else "-"
            w(f"| {key} | " + " | ".join(cells) + f" | {total} | {repeat} |")
        w("")

    gce = results.get("gc_experiment")
    if gce:
        w("### Experiment: the garbage collector tuned in the server (a proposal, not the product today)")
        w("")
        w("The same server started by `bench/gc_launcher.py`: `gc.freeze()` after the app is built (before gunicorn forks) "
          "and `gc.set_threshold(10000, 10, 10)`. The proposed change is those three lines in `cds_service/cli.py`.")
        w("")
        w("| run | calls | product: req/s | p50 ms | p99 ms | GC tuned: req/s | p50 ms | p99 ms |")
        w("|---|---|---|---|---|---|---|---|")
        for name, run in gce["runs"].items():
            base = _run(results, name)
            if base is None:
                continue
            label = "new patient" if not name.endswith("-repeat") and not name.startswith("floor") else "same chart" if name.endswith("-repeat") else "-"
            lat, blat = run["latency_us"], base["latency_us"]
            w(f"| {name.removesuffix('-repeat')} | {label} | {base['rps']:,.1f} | {ms(blat['p50'])} | {ms(blat['p99'])} | "
              f"{run['rps']:,.1f} | {ms(lat['p50'])} | {ms(lat['p99'])} |")
        if gce.get("rss_end_mib"):
            w(f"| worker RSS at the end, MiB | - | {_rss(results.get('rss_end_mib'))} | | | {_rss(gce['rss_end_mib'])} | | |")
        w("")

    for key, label in (("profile", "new patient every call"), ("profile_repeat", "same chart again")):
        profile = results.get(key)
        if profile and not profile.get("error"):
            w(f"### Profile: {label} (py-spy, one worker, patient-view 100 resources at 32 connections, {profile['samples']:,} samples)")
            w("")
            w("| where the worker's time goes | share |")
            w("|---|---|")
            for area, share in profile["areas"]:
                w(f"| {area} | {share:.0%} |")
            w("")
            w("| hottest functions (self time) | share |")
            w("|---|---|")
            for name, share in profile["self"][:10]:
                w(f"| `{name}` | {share:.1%} |")
            w("")
        elif profile:
            w(f"Profile ({label}): not taken ({profile['error']}).")
            w("")
    return "\n".join(out).rstrip() + "\n"


def memory(results: dict[str, Any]) -> dict[str, Any] | None:
    """RSS after 10,000 calls of the 100-resource patient, and at the end of those runs.

    The first few thousand calls fill the bounded caches (validation results, parsed dates) and
    bring the heap to its working size; growth is measured from the first sample taken once
    10,000 calls had been served to the end of the 100-resource runs.
    """
    mem = results.get("memory")
    if not mem:
        return None
    mid = next((sample for sample in results.get("rss_samples", [])
                if 10000 <= sample["requests"] <= mem["requests_at_end"] and sample["rss_mib"]), None)
    if mid is None:
        return mem
    return {**mem, "requests_at_start": mid["requests"], "rss_at_start_mib": mid["rss_mib"],
            "requests_early": mem["requests_at_start"], "rss_early_mib": mem["rss_at_start_mib"]}


def _sizes(runs: dict[str, Any]) -> list[int]:
    return sorted({int(k.split("-")[-2]) for k in runs if k.endswith("-c1") and k.split("-")[-2].isdigit()})


def _rss(values: dict[Any, float] | None) -> str:
    if not values:
        return "-"
    return " / ".join(f"{v:.0f}" for v in values.values())


def _ok(flag: bool) -> str:
    return "yes" if flag else "**no**"


def _growth(results: dict[str, Any]) -> dict[str, str]:
    growth = {}
    for hook in HOOKS:
        p = {size: _run(results, f"{hook}-{size}-c1") for size in (100, 1000, 10000)}
        if all(p.values()):
            t = {size: run["latency_us"]["p50"] / 1000 for size, run in p.items()}  # type: ignore[index]
            low = (t[1000] - t[100]) / 0.9
            high = (t[10000] - t[1000]) / 9
            growth[hook] = f"{low:.1f} -> {high:.1f} ms per 1,000"
    return growth


def plot(results: dict[str, Any], out: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    runs = results["runs"]
    sizes = _sizes(runs)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    ax = axes[0]
    for hook, marker in zip(HOOKS, "os^"):
        xs = [s for s in sizes if f"{hook}-{s}-c1" in runs]
        p50 = [runs[f"{hook}-{s}-c1"]["latency_us"]["p50"] / 1000 for s in xs]
        p99 = [runs[f"{hook}-{s}-c1"]["latency_us"]["p99"] / 1000 for s in xs]
        line = ax.plot(xs, p50, marker=marker, label=f"{hook} p50")[0]
        ax.plot(xs, p99, marker=marker, linestyle=":", color=line.get_color(), alpha=0.6, label=f"{hook} p99")
        warm = [s for s in xs if f"{hook}-{s}-c1-repeat" in runs]
        if warm:
            ax.plot(warm, [runs[f"{hook}-{s}-c1-repeat"]["latency_us"]["p50"] / 1000 for s in warm], marker=marker, linestyle="none",
                    markerfacecolor="none", markersize=10, color=line.get_color(), label=f"{hook} p50, same chart again")
    if sizes:
        ref_y = runs.get(f"patient-view-{sizes[-1]}-c1", {}).get("latency_us", {}).get("p50", 0) / 1000
        if ref_y:
            ax.plot(sizes, [ref_y * s / sizes[-1] for s in sizes], color="grey", linestyle="--", linewidth=1, label="linear (slope 1)")
    floor = runs["floor-c1"]["latency_us"]["p50"] / 1000
    ax.axhline(floor, color="black", linewidth=0.8, label=f"floor /healthz p50 ({floor:.2f} ms)")
    ax.axhline(150, color="red", linewidth=0.8, linestyle="-.", label="target at 10,000: 150 ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("resources in prefetch")
    ax.set_ylabel("latency over HTTP, ms (1 connection, JWT on, new patient each call)")
    ax.set_title("End to end: cds-service serve, 2 workers")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)

    ax = axes[1]
    stages = results.get("stages") or {}
    if not stages:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "stage timing not run", ha="center", va="center")
    names = ("validate", "record", "fhir", "engine", "parse")
    for hook, marker in zip(HOOKS, "os^"):
        xs = [s for s in sizes if f"{hook}-{s}" in stages and "pipeline" in stages[f"{hook}-{s}"]]
        line = ax.plot(xs, [stages[f"{hook}-{s}"]["pipeline"]["median_ms"] for s in xs], marker=marker, label=f"{hook} pipeline")[0]
        ys = [s for s in xs if "pipeline-repeat" in stages[f"{hook}-{s}"]]
        ax.plot(ys, [stages[f"{hook}-{s}"]["pipeline-repeat"]["median_ms"] for s in ys], marker=marker, markerfacecolor="none",
                linestyle=":", color=line.get_color(), label=f"{hook} pipeline, same chart")
    for stage in names:
        xs = [s for s in sizes if f"patient-view-{s}" in stages and stage in stages[f"patient-view-{s}"]]
        if xs:
            ax.plot(xs, [stages[f"patient-view-{s}"][stage]["median_ms"] for s in xs], linestyle="--", linewidth=1,
                    label=f"patient-view {stage}")
    if stages:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("resources in prefetch")
    ax.set_ylabel("ms (median, in process)")
    ax.set_title("In process, by stage (pytest-benchmark)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle(f"B12 CDS service, {results['machine']['date']}, {results['machine']['cores']} cores", fontsize=10)
    fig.tight_layout()
    path = out / "latency-vs-size.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(results: dict[str, Any], out: Path, update_docs: bool = True) -> str:
    markdown = tables(results)
    image = plot(results, out)
    if image is not None:
        markdown += f"\n![latency against record size](../bench/results/{image.name})\n"
    (out / "results.md").write_text(markdown.replace("../bench/results/", ""))
    if update_docs and DOCS.exists():
        text = DOCS.read_text()
        if BEGIN in text and END in text:
            head, _, rest = text.partition(BEGIN)
            _, _, tail = rest.partition(END)
            DOCS.write_text(f"{head}{BEGIN}\n{markdown}{END}{tail}")
    return markdown
