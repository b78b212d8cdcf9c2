"""A local FHIR server stand-in for the fallback path: answers every search after a fixed delay.

``python -m bench.fhir_standin --port P --delay 0.05 --size 100`` serves, on 127.0.0.1 only, the
benchmark patient's searchset Bundles (``GET /fhir/Observation?patient=...`` etc.) and the Patient
read, each after ``--delay`` seconds. Requests are served on their own threads, so the delay of
concurrent queries overlaps exactly as it would on a real server; the service's total time then
shows whether it queries concurrently (about one delay) or one after another (six delays).
"""

from __future__ import annotations

import argparse
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import orjson

from .workload import PATIENT_ID, PREFETCH_KEYS, record, searchset


def build_answers(size: int) -> dict[str, bytes]:
    resources = record(size)
    by_type: dict[str, list] = {rtype: [] for rtype in PREFETCH_KEYS}
    for resource in resources[1:]:
        by_type[resource["resourceType"]].append(resource)
    answers = {rtype: orjson.dumps(searchset(items)) for rtype, items in by_type.items()}
    answers[f"Patient/{PATIENT_ID}"] = orjson.dumps(resources[0])
    return answers


def serve(port: int, delay: float, size: int) -> None:
    answers = build_answers(size)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; without TCP_NODELAY the second waits for the
        # client's delayed ACK (about 40 ms), which a real FHIR server would not add.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            time.sleep(delay)
            path = urlsplit(self.path).path.removeprefix("/fhir/")
            body = answers.get(path)
            status = 200 if body is not None else 404
            if body is None:
                body = orjson.dumps({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]})
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 128
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    serve(args.port, args.delay, args.size)


if __name__ == "__main__":
    main()
