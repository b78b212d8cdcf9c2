"""The ``cds-service`` command: serve, evaluate a request file, validate the knowledge."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from .settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"cds-service: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, settings.log_level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # urllib3 logs request lines (with patient ids in the query) at DEBUG.
    logging.getLogger("urllib3").setLevel(max(logging.WARNING, logging.getLogger().level))
    code: int = args.handler(args, settings)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cds-service", description="CDS Hooks service for vitamin B12 deficiency neuropathy")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service (granian, Flask behind a buffering front)")
    serve.add_argument("--host", default=os.environ.get("CDS_HOST", "127.0.0.1"), help="interface to bind (default 127.0.0.1)")
    # Not 8080: that is where a locally run CDS Hooks sandbox listens.
    serve.add_argument("--port", type=int, default=int(os.environ.get("CDS_PORT", "8000")), help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=int(os.environ.get("CDS_WORKERS", "0")) or (os.cpu_count() or 1),
                       help="worker processes (default: one per core)")
    serve.set_defaults(handler=_serve)

    evaluate = commands.add_parser("evaluate", help="print the cards for a hook request file, without a server")
    evaluate.add_argument("--hook", required=True, help="patient-view, order-select or order-sign")
    evaluate.add_argument("--request", required=True, type=Path, help="a CDS Hooks request JSON file")
    evaluate.add_argument("--now", help="evaluate as of this ISO 8601 instant (default: now)")
    evaluate.add_argument("--explain", action="store_true", help="also print why each recommendation did or did not fire")
    evaluate.set_defaults(handler=_evaluate)

    validate = commands.add_parser("validate", help="load and check the knowledge, then exit")
    validate.set_defaults(handler=_validate)
    return parser


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from .app import create_app
    from .knowledge.loader import KnowledgeError
    from .security import SecurityConfigError

    try:
        settings = dataclasses.replace(settings, require_public_base_url=True)  # serving for real: docs/security.md s5
        app = create_app(settings)  # load the knowledge once, before forking workers
    except KnowledgeError as exc:
        print(f"cds-service: the knowledge cannot be loaded: {exc}", file=sys.stderr)
        return 1
    except SecurityConfigError as exc:
        print(f"cds-service: {exc}", file=sys.stderr)
        return 2
    # Everything loaded so far (knowledge, compiled FHIRPath, models) lives for the whole process:
    # freezing it keeps the garbage collector from re-scanning it on every large request
    # (measured: a 10,000-resource call 612 -> 401 ms in process, docs/performance.md).
    gc.collect()
    gc.freeze()

    from .serving.server import serve

    print(f"cds-service: serving CDS Hooks on http://{args.host}:{args.port}/cds-services with {args.workers} worker(s)", file=sys.stderr)
    serve(app, settings, args.host, args.port, args.workers)
    return 0


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from .budget import WorkBudgetExceeded
    from .fhir.client import FetchLimits, FhirClient
    from .fhir.gather import DataUnavailable
    from .knowledge.explain import format_traces, format_unreadable
    from .pipeline import decide
    from .protocol.models import HookRequest
    from .protocol.validation import RequestValidationError

    knowledge = _load_knowledge(settings)
    if knowledge is None:
        return 1
    service = knowledge.service_for_hook(args.hook)
    if service is None:
        print(f"cds-service: no service for hook {args.hook!r}; hooks: {sorted(s.hook for s in knowledge.services.values())}", file=sys.stderr)
        return 2
    try:
        body = orjson.loads(args.request.read_bytes())
        hook_request = HookRequest.from_json(body, expected_hook=args.hook)
        now = _parse_now(args.now)
        client = FhirClient(FetchLimits(total_timeout=settings.fhir_total_timeout,
                                        allow_private_addresses=settings.allow_private_fhir_addresses))
        decision = decide(
            knowledge, service, hook_request, client, now,
            allow_http_fhir_server=settings.allow_http_fhir_server, explain=args.explain,
        )
    except OSError as exc:
        print(f"cds-service: cannot read {args.request}: {exc.strerror}", file=sys.stderr)
        return 2
    except orjson.JSONDecodeError as exc:
        print(f"cds-service: {args.request} is not valid JSON: {exc}", file=sys.stderr)
        return 2
    except RequestValidationError as exc:
        print(f"cds-service: invalid request at {exc.field or '(root)'}: {exc.message}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"cds-service: {exc}", file=sys.stderr)
        return 2
    except DataUnavailable as exc:
        print(f"cds-service: data unavailable (the service would answer 412): {exc}", file=sys.stderr)
        return 1
    except WorkBudgetExceeded as exc:
        print(f"cds-service: over the work budget (the service would answer 422): {exc.what}", file=sys.stderr)
        return 1
    sys.stdout.write(orjson.dumps(decision.response(hook_request.hook_instance), option=orjson.OPT_INDENT_2).decode() + "\n")
    if args.explain:
        sys.stdout.write("\n" + format_traces(decision.traces) + "\n")
        sys.stdout.write(format_unreadable(decision.unreadable, decision.unreadable_orders) + "\n")
    return 0


def _validate(args: argparse.Namespace, settings: Settings) -> int:
    knowledge = _load_knowledge(settings)
    if knowledge is None:
        return 1
    for service in knowledge.services.values():
        members = ", ".join(r.id for r in service.recommendations)
        print(f"{service.id} ({service.hook}): {members}")
    print(f"ok: {len(knowledge.recommendations)} recommendations, {len(knowledge.terminology.urls())} value sets, {len(knowledge.parameters)} parameters")
    return 0


def _load_knowledge(settings: Settings) -> Any:
    """The knowledge, or None after saying on stderr which file and element are wrong."""
    from .knowledge.loader import KnowledgeError

    try:
        return _knowledge_as_on_disk(settings.knowledge_dir.resolve(), settings.parameters_file, _files_stamp(settings))
    except KnowledgeError as exc:
        print(f"cds-service: the knowledge cannot be loaded: {exc}", file=sys.stderr)
        return None


@functools.lru_cache(maxsize=4)
def _knowledge_as_on_disk(directory: Path, parameters_file: Path | None, _stamp: tuple[tuple[str, int], ...]) -> Any:
    # Loading takes about 2 s; a process that evaluates many requests (a batch script, the test
    # that compares the CLI with the server on every fixture) loads it once while no file changed.
    from .knowledge.loader import load_knowledge

    return load_knowledge(directory, parameters_file)


def _files_stamp(settings: Settings) -> tuple[tuple[str, int], ...]:
    files = sorted(settings.knowledge_dir.rglob("*.json"))
    if settings.parameters_file is not None:
        files.append(settings.parameters_file)
    return tuple((str(path), path.stat().st_mtime_ns) for path in files if path.is_file())


def _parse_now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--now must be an ISO 8601 date or instant, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


if __name__ == "__main__":
    sys.exit(main())
