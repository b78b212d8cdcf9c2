"""The benchmark: the production server under wrk, with authentication on, plus in-process stages.

Run it with ``bash bench/run.sh`` (installs wrk and the ``bench`` extra first). Steps:

1. generate the workloads (``bench/workload.py``): 10 / 100 / 1,000 / 10,000-resource patients, per hook;
2. time the in-process pipeline stage by stage (``bench/test_stages.py``, pytest-benchmark);
3. create an ES384 CDS client (``bench/tokens.py``), start ``cds-service serve`` (granian; gunicorn sync before issue 11,
   one worker per core, knowledge loaded before fork) on 127.0.0.1 trusting it, and a FHIR
   stand-in with a fixed 50 ms delay (``bench/fhir_standin.py``);
4. drive it with wrk (``bench/wrk/cds.lua``, one fresh JWT per call): the floor (GET /healthz),
   the 100-resource patient at 32 connections, a memory soak to 10,000+ calls, record size
   10 -> 10,000 at one connection, and the fallback path (everything fetched from the stand-in);
5. profile a worker with py-spy under load;
6. write ``bench/results/`` (results.json, results.md, latency-vs-size.png, profile) and the
   results section of ``docs/performance.md``.

Everything is on loopback. Every latency is also given as a ratio to the floor measured in the
same run, because the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from . import report
from .tokens import create_issuer, one, write_tokens
from .workload import HOOKS, SERVICES, SIZES, composition, make_request

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / ".work"
RESULTS = BENCH / "results"
LUA = BENCH / "wrk" / "cds.lua"
PYTHON = sys.executable
FALLBACK_DELAY = 0.05
PACED_RATE = 400  # req/s offered by the paced 32-connection runs (the throughput target)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) // 1024  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "cds_service"], cwd=ROOT, capture_output=True, text=True).stdout.strip())
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "memory_mib": mem,
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "wrk": wrk_version, "commit": commit + ("+uncommitted cds_service changes" if dirty else ""),
        "load_at_start": os.getloadavg(),
    }


# --------------------------------------------------------------------------- processes


class Service:
    """``cds-service serve`` on loopback, authentication on, trusting the bench client."""

    def __init__(self, issuers: Path, state: Path, workers: int, log_path: Path, gc_tuned: bool = False) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        for name in list(env):
            if name.startswith("CDS_"):
                del env[name]
        env.update({
            "CDS_TRUSTED_ISSUERS": str(issuers),
            "CDS_PUBLIC_BASE_URL": self.base,
            "CDS_STATE_DIR": str(state),
            # The FHIR stand-in is plain http on loopback; the flag only allows an http fhirServer.
            "CDS_ALLOW_HTTP_FHIR_SERVER": "true",
            "CDS_ALLOW_PRIVATE_FHIR_ADDRESSES": "true",  # ... and one on loopback
        })
        self.log_file = log_path.open("wb")
        cli = [str(Path(PYTHON).parent / "cds-service")] if not gc_tuned else [PYTHON, "-m", "bench.gc_launcher"]
        self.process = subprocess.Popen(
            cli + ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)],
            env=env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
        )
        wait_http(self.base + "/healthz")
        deadline = time.monotonic() + 20
        while len(self.workers()) < workers and time.monotonic() < deadline:
            time.sleep(0.2)

    def workers(self) -> list[int]:
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        except OSError:
            return []
        return [int(pid) for pid in children]

    def rss_mib(self) -> dict[int, float]:
        sizes = {}
        for pid in self.workers():
            try:
                match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
            except OSError:
                continue
            if match:
                sizes[pid] = int(match.group(1)) / 1024
        return sizes

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log_file.close()


class Standin:
    def __init__(self, delay: float, size: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        self.process = subprocess.Popen(
            [PYTHON, "-m", "bench.fhir_standin", "--port", str(self.port), "--delay", str(delay), "--size", str(size)],
            cwd=ROOT, start_new_session=True,
        )
        wait_http(f"{self.base}/Patient/bench-patient")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(10)


# --------------------------------------------------------------------------- load


class Runner:
    def __init__(self, service: Service, key: Path, work: Path) -> None:
        self.service = service
        self.key = key
        self.work = work
        self.cds_requests = 0

    def post_once(self, service_id: str, body_file: Path) -> tuple[int, dict[str, Any], float]:
        url = f"{self.service.base}/cds-services/{service_id}"
        request = urllib.request.Request(url, data=body_file.read_bytes(), method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {one(self.key, url)}"})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, body = response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as exc:
            status, body = exc.code, orjson.loads(exc.read() or b"{}")
        self.cds_requests += 1
        return status, body, time.perf_counter() - started

    def wrk(self, path: str, body_file: Path | None, connections: int, duration: float, expected_rps: float = 0,
            new_patient: bool = False, pause_ms: float = 0) -> dict[str, Any]:
        tokens = "-"
        token_count = 0
        if body_file is not None:
            token_count = int(min(60000, max(64, expected_rps * duration * 2.5 + 4 * connections)))
            url = self.service.base + path
            tokens = str(write_tokens(self.key, url, token_count, self.work / "tokens.txt"))
        command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "30s", "--latency",
                   "-s", str(LUA), self.service.base + path, "--", path, str(body_file) if body_file else "-", tokens,
                   "new-patient" if new_patient else "same-patient", f"{pause_ms:.1f}"]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
        line = next((l for l in completed.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk failed: {completed.stdout}\n{completed.stderr}")
        result = json.loads(line.removeprefix("BENCH_JSON "))
        result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
        result["connections"] = connections
        result["new_patient"] = new_patient
        result["pause_ms"] = pause_ms
        result["tokens"] = token_count
        result["tokens_exhausted"] = bool(body_file) and result["requests"] >= token_count - connections
        errors = sum(result[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_status", "errors_timeout"))
        result["errors"] = errors
        if body_file is not None:
            self.cds_requests += result["requests"]
        if errors:
            log(f"  !! {errors} errors on {path} (status {result['errors_status']}, timeout {result['errors_timeout']})")
        return result


def summarise(result: dict[str, Any]) -> str:
    lat = result["latency_us"]
    return (f"{result['rps']:8.1f} req/s  p50 {lat['p50'] / 1000:7.2f} ms  p99 {lat['p99'] / 1000:7.2f} ms  "
            f"({result['requests']} requests, {result['errors']} errors)")


def profile_worker(service: Service, runner: Runner, body: Path, service_id: str, seconds: int, expected_rps: float,
                   new_patient: bool = True) -> dict[str, Any]:
    """py-spy on the workers while wrk drives the 100-resource patient-view."""
    py_spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    workers = service.workers()
    if not Path(py_spy).exists() or len(workers) < 1:
        return {"error": "py-spy not available"}
    suffix = "new-patient" if new_patient else "same-chart"
    raw = WORK / f"profile-{service_id}-{suffix}.txt"
    svg = RESULTS / f"profile-{service_id}-{suffix}.svg"
    spies = [subprocess.Popen([py_spy, "record", "-p", str(workers[0]), "-d", str(seconds), "-r", "200", "-f", "raw", "-o", str(raw)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)]
    if len(workers) > 1:
        spies.append(subprocess.Popen([py_spy, "record", "-p", str(workers[1]), "-d", str(seconds), "-r", "200", "-o", str(svg)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    time.sleep(1)
    runner.wrk(f"/cds-services/{service_id}", body, 32, seconds - 1, expected_rps, new_patient=new_patient)
    errors = []
    for spy in spies:
        _out, err = spy.communicate(timeout=60)
        if spy.returncode != 0:
            errors.append(err.decode(errors="replace")[-300:])
    if errors or not raw.exists():
        return {"error": "; ".join(errors) or "no profile written"}
    return report.summarise_profile(raw)


# --------------------------------------------------------------------------- main


def gc_experiment(issuers: Path, key: Path, workers: int, sizes: tuple[int, ...], workloads: dict[tuple[int, str], Path],
                  scale: float) -> dict[str, Any]:
    """The 100-resource load and the largest charts again, with the collector tuned (a proposal)."""
    log("experiment: the same server with gc.freeze() after start-up and gc.set_threshold(10000, 10, 10)")
    state = WORK / "state-gc"
    state.mkdir(mode=0o700)
    service = Service(issuers, state, workers, WORK / "service-gc.log", gc_tuned=True)
    runner = Runner(service, key, WORK)
    runs: dict[str, Any] = {}
    try:
        runner.wrk("/healthz", None, 32, 2 * scale)
        runs["floor-c32"] = runner.wrk("/healthz", None, 32, 6 * scale)
        runs["floor-c1"] = runner.wrk("/healthz", None, 1, 4 * scale)
        for hook in HOOKS:
            path = f"/cds-services/{SERVICES[hook]}"
            runner.wrk(path, workloads[(100, hook)], 32, 2 * scale, 600)
            runs[f"{hook}-100-c32-repeat"] = runner.wrk(path, workloads[(100, hook)], 32, 8 * scale, 600)
            log(f"  {hook}-100 c=32 same chart " + summarise(runs[f"{hook}-100-c32-repeat"]))
        size = sizes[-1]
        for hook in HOOKS:
            path = f"/cds-services/{SERVICES[hook]}"
            runs[f"{hook}-{size}-c1"] = runner.wrk(path, workloads[(size, hook)], 1, 10 * scale, 10, new_patient=True)
            runs[f"{hook}-{size}-c1-repeat"] = runner.wrk(path, workloads[(size, hook)], 1, 10 * scale, 20)
            log(f"  {hook}-{size} c=1 new patient " + summarise(runs[f"{hook}-{size}-c1"]) + "; same chart " + summarise(runs[f"{hook}-{size}-c1-repeat"]))
        return {"runs": runs, "rss_end_mib": service.rss_mib()}
    finally:
        service.stop()


def run_stages(sizes: tuple[int, ...], out: Path) -> dict[str, Any]:
    env = dict(os.environ, BENCH_STAGE_SIZES=",".join(str(s) for s in sizes))
    command = [PYTHON, "-m", "pytest", str(BENCH / "test_stages.py"), "--benchmark-only", "-q", "-p", "no:cacheprovider",
               f"--benchmark-json={out}", "--benchmark-disable-gc"]
    completed = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"stage benchmark failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-2000:]}")
    data = json.loads(out.read_text())
    stages: dict[str, Any] = {}
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        stats = bench["stats"]
        key = f"{info['hook']}-{info['size']}" if info["stage"] != "auth" else "auth"
        stages.setdefault(key, {})[info["stage"]] = {"median_ms": stats["median"] * 1000, "min_ms": stats["min"] * 1000,
                                                   "rounds": stats["rounds"]}
    return stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CDS service benchmark (see bench/run.py)")
    parser.add_argument("--quick", action="store_true", help="shorter runs, sizes up to 1,000 (a smoke test, not for the table)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: one per core)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--no-stages", action="store_true", help="skip the in-process stage timing")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite the results section of docs/performance.md")
    parser.add_argument("--no-gc-experiment", action="store_true",
                        help="skip the last phase: the same server with the garbage collector tuned (bench/gc_launcher.py)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    sizes = SIZES[:3] if args.quick else SIZES
    scale = 0.4 if args.quick else 1.0
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick, "workers": args.workers, "runs": {}}
    results["composition"] = {str(size): composition(size) for size in sizes}

    log("writing workloads")
    workloads: dict[tuple[int, str], Path] = {}
    for size in sizes:
        for hook in HOOKS:
            path = WORK / f"{hook}-{size}.json"
            path.write_bytes(orjson.dumps(make_request(size, hook)))
            workloads[(size, hook)] = path
    results["workload_bytes"] = {f"{hook}-{size}": path.stat().st_size for (size, hook), path in workloads.items()}

    if not args.no_stages:
        log("in-process stage timing (pytest-benchmark)")
        results["stages"] = run_stages(sizes, WORK / "stages.json")

    key, issuers = create_issuer(WORK / "auth")
    state = WORK / "state"
    state.mkdir(mode=0o700)
    standin = Standin(FALLBACK_DELAY, 100)
    service = Service(issuers, state, args.workers, WORK / "service.log")
    rss_samples: list[tuple[float, int, dict[int, float]]] = []
    sampling = threading.Event()
    runner = Runner(service, key, WORK)

    def sample_rss() -> None:
        while not sampling.wait(1.0):
            rss_samples.append((time.monotonic() - started, runner.cds_requests, service.rss_mib()))

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    try:
        results["rss_idle_mib"] = service.rss_mib()
        log(f"service on {service.base}, workers {service.workers()}, RSS {results['rss_idle_mib']}")

        # Sanity: every workload answers 200 with its cards; the single-call latency seeds the token counts.
        single: dict[str, float] = {}
        results["cards"] = {}
        fallback_bodies = {}
        for hook in HOOKS:
            fallback = WORK / f"{hook}-fallback.json"
            fallback.write_bytes(orjson.dumps(make_request(100, hook, fhir_server=standin.base, with_prefetch=False)))
            fallback_bodies[hook] = fallback
        def sanity(items: list[tuple[int, str, Path]]) -> None:
            for size, hook, path in items:
                name = f"{hook}-{size}" if size else f"{hook}-fallback"
                for _ in range(2):
                    status, body, seconds = runner.post_once(SERVICES[hook], path)
                if status != 200:
                    raise RuntimeError(f"{name}: HTTP {status} {body}")
                single[name] = seconds
                results["cards"][name] = [f"{c['indicator']}: {c['summary']}" for c in body["cards"]]
                log(f"  {name:24} 200, {len(body['cards'])} card(s), single call {seconds * 1000:.1f} ms")

        # The largest charts are checked just before the size sweep, so that the memory figures of
        # the 100-resource runs are not those of a heap that has already held a 10,000-resource call.
        sanity([(size, hook, path) for (size, hook), path in workloads.items() if size <= 1000]
               + [(0, hook, path) for hook, path in fallback_bodies.items()])

        def expected(name: str, connections: int) -> float:
            return min(connections, args.workers) / max(single[name], 1e-4)

        runs = results["runs"]
        log("floor: GET /healthz")
        runner.wrk("/healthz", None, 32, 2 * scale)
        runs["floor-c32"] = runner.wrk("/healthz", None, 32, 10 * scale)
        log("  c=32 " + summarise(runs["floor-c32"]))
        runs["floor-c1"] = runner.wrk("/healthz", None, 1, 5 * scale)
        log("  c=1  " + summarise(runs["floor-c1"]))

        log("100-resource patient, 32 connections: a new patient every call, then the same chart again and again")
        results["rss_before_load_mib"] = service.rss_mib()
        early: dict[str, Any] = {}
        for hook in HOOKS:
            name = f"{hook}-100"
            path = f"/cds-services/{SERVICES[hook]}"
            runner.wrk(path, workloads[(100, hook)], 32, 3 * scale, expected(name, 32), new_patient=True)
            runs[f"{name}-c32"] = runner.wrk(path, workloads[(100, hook)], 32, 10 * scale, expected(name, 32), new_patient=True)
            log(f"  {name:18} new patient " + summarise(runs[f"{name}-c32"]))
            runs[f"{name}-c32-repeat"] = runner.wrk(path, workloads[(100, hook)], 32, 10 * scale, 2 * expected(name, 32))
            log(f"  {name:18} same chart  " + summarise(runs[f"{name}-c32-repeat"]))
            # 32 connections offering 400 req/s in all (not as many as the server can take).
            pause = max(0.0, 32 / PACED_RATE * 1000 - single[name] * 1000)
            for suffix, new in (("", True), ("-repeat", False)):
                runs[f"{name}-paced{suffix}"] = runner.wrk(path, workloads[(100, hook)], 32, 8 * scale, PACED_RATE * 1.2,
                                                          new_patient=new, pause_ms=pause)
                log(f"  {name:18} {'new patient' if new else 'same chart '} at {PACED_RATE} req/s offered: "
                    + summarise(runs[f"{name}-paced{suffix}"]))
            if not early:  # after the first few thousand calls: caches warm, heap at its working size
                early = {"requests": runner.cds_requests, "rss": service.rss_mib()}

        # Memory: keep calling until 10,000+ CDS calls have been served in all, sampling worker RSS.
        soak_start = early
        target = 2500 if args.quick else 10000
        soak_rps = max(runs["patient-view-100-c32"]["rps"], 1.0)
        while runner.cds_requests < target:
            seconds = min(120, max(3, (target - runner.cds_requests) / soak_rps * 1.1))
            runner.wrk("/cds-services/" + SERVICES["patient-view"], workloads[(100, "patient-view")], 32, seconds, soak_rps,
                       new_patient=True)
        time.sleep(1.5)
        results["memory"] = {"requests_at_start": soak_start["requests"], "rss_at_start_mib": soak_start["rss"],
                             "requests_at_end": runner.cds_requests, "rss_at_end_mib": service.rss_mib()}
        log(f"  memory: {results['memory']}")

        sanity([(size, hook, path) for (size, hook), path in workloads.items() if size > 1000])
        log("record size sweep, 1 connection, a new patient every call (and the largest chart sent again)")
        for size in sizes:
            for hook in HOOKS:
                name = f"{hook}-{size}"
                seconds = (10 if size >= 10000 else 6 if size >= 1000 else 4) * scale
                runs[f"{name}-c1"] = runner.wrk(f"/cds-services/{SERVICES[hook]}", workloads[(size, hook)], 1, seconds,
                                                expected(name, 1), new_patient=True)
                log(f"  {name:18} new patient " + summarise(runs[f"{name}-c1"]))
                if size == sizes[-1]:
                    runs[f"{name}-c1-repeat"] = runner.wrk(f"/cds-services/{SERVICES[hook]}", workloads[(size, hook)], 1,
                                                           seconds, 3 * expected(name, 1))
                    log(f"  {name:18} same chart  " + summarise(runs[f"{name}-c1-repeat"]))

        log(f"fallback: prefetch holds only the Patient; six searches at {FALLBACK_DELAY * 1000:.0f} ms each")
        for hook in HOOKS:
            name = f"{hook}-fallback"
            runs[f"{name}-c1"] = runner.wrk(f"/cds-services/{SERVICES[hook]}", fallback_bodies[hook], 1, 6 * scale, expected(name, 1))
            log(f"  {name:18} c=1 " + summarise(runs[f"{name}-c1"]))
        runs["patient-view-fallback-c8"] = runner.wrk("/cds-services/" + SERVICES["patient-view"], fallback_bodies["patient-view"], 8,
                                                      6 * scale, 8 / FALLBACK_DELAY)
        log("  patient-view-fallback c=8 " + summarise(runs["patient-view-fallback-c8"]))

        if not args.no_profile:
            log("py-spy profile of the workers, patient-view, 100 resources, 32 connections")
            results["profile"] = profile_worker(service, runner, workloads[(100, "patient-view")], SERVICES["patient-view"],
                                                max(6, int(12 * scale)), runs["patient-view-100-c32"]["rps"])
            results["profile_repeat"] = profile_worker(service, runner, workloads[(100, "patient-view")], SERVICES["patient-view"],
                                                       max(6, int(10 * scale)), runs["patient-view-100-c32-repeat"]["rps"],
                                                       new_patient=False)
        results["rss_end_mib"] = service.rss_mib()
        sampling.set()
        service.stop()
        if not args.no_gc_experiment:
            results["gc_experiment"] = gc_experiment(issuers, key, args.workers, sizes, workloads, scale)
    finally:
        sampling.set()
        service.stop()
        standin.stop()
    results["rss_samples"] = [{"t": t, "requests": n, "rss_mib": rss} for t, n, rss in rss_samples]
    results["elapsed_s"] = time.monotonic() - started
    (RESULTS / "results.json").write_text(json.dumps(results, indent=1, default=str))
    markdown = report.write(results, RESULTS, update_docs=not args.no_docs and not args.quick)
    print(markdown)
    log(f"done in {results['elapsed_s']:.0f} s; wrote {RESULTS.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

