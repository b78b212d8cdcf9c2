"""In-process pipeline timing, stage by stage, with pytest-benchmark.

Not part of the test suite (``testpaths = ["tests"]``); ``bench/run.sh`` runs it, or by hand:

    .venv/bin/pytest bench/test_stages.py --benchmark-only -q

Stages, in the order a hook call runs them (``cds_service/api/hooks.py``):

| stage      | what is timed |
|------------|---------------|
| parse      | ``orjson.loads`` of the request body |
| validate   | JSON Schema validation of the request envelope + prefetch Bundle structure (``HookRequest.from_json``) |
| auth       | ES384 JWT verification + replay-cache insert (``JwtVerifier.verify``), one fresh token per call |
| record     | ``gather_resources``: prefetch Bundles -> resource list (no network: everything is prefetched) |
| fhir       | the resource reader: ``PatientRecord.read`` + the draft orders (``read_draft_orders``) |
| engine     | ``apply_service`` on a read record (selecting inputs, FHIRPath, card text) |
| cards      | ``to_cds_response`` + ``orjson`` serialisation |
| pipeline   | parse + ``decide()`` + cards, as the endpoint runs them (no auth), a chart never seen before |
| pipeline-repeat | the same chart again (nothing is remembered between calls since the reader: kept for comparison) |
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

import orjson
import pytest

from cds_service.fhir.client import FhirClient
from cds_service.fhir.gather import gather_resources
from cds_service.jsonio import dumps_bytes
from cds_service.knowledge.cards import to_cds_response
from cds_service.knowledge.engine import apply_service
from cds_service.knowledge.loader import load_knowledge
from cds_service.knowledge.record import PatientRecord
from cds_service.pipeline import decide, hook_context
from cds_service.protocol.drafts import read_draft_orders
from cds_service.protocol.models import HookRequest
from cds_service.protocol.validation import check_prefetch_bundles
from cds_service.settings import DEFAULT_KNOWLEDGE_DIR

from .workload import HOOKS, SERVICES, make_request

SIZES = tuple(int(s) for s in os.environ.get("BENCH_STAGE_SIZES", "10,100,1000,10000").split(","))
CASES = [(size, hook) for size in SIZES for hook in HOOKS]
IDS = [f"{hook}-{size}" for size, hook in CASES]


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge(DEFAULT_KNOWLEDGE_DIR)


@pytest.fixture(scope="module")
def client():
    return FhirClient()


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def case(request, knowledge):
    size, hook = request.param
    raw = orjson.dumps(make_request(size, hook))
    service = knowledge.services[SERVICES[hook]]
    return size, hook, raw, service


def _rounds(size: int) -> dict:
    # Enough rounds for a stable median, bounded in time for the 10,000-resource record.
    return {"rounds": 5 if size >= 10000 else 15 if size >= 1000 else 60, "iterations": 1, "warmup_rounds": 1}


def _parsed(raw, service):
    request = HookRequest.from_json(orjson.loads(raw), expected_hook=service.hook)
    return request


def _info(benchmark, stage, size, hook):
    benchmark.group = stage
    benchmark.extra_info.update({"stage": stage, "size": size, "hook": hook})


def test_parse(benchmark, case):
    size, hook, raw, _service = case
    _info(benchmark, "parse", size, hook)
    benchmark.pedantic(orjson.loads, args=(raw,), **_rounds(size))


def test_validate(benchmark, case):
    size, hook, raw, service = case
    _info(benchmark, "validate", size, hook)
    body = orjson.loads(raw)

    def validate():
        request = HookRequest.from_json(body, expected_hook=service.hook)
        check_prefetch_bundles(request.prefetch, service.prefetch)

    benchmark.pedantic(validate, **_rounds(size))


def test_record(benchmark, case, client):
    size, hook, raw, service = case
    _info(benchmark, "record", size, hook)
    request = _parsed(raw, service)
    benchmark.pedantic(gather_resources, args=(request, service.prefetch, client), **_rounds(size))


def _read(request, service, client, knowledge):
    record = PatientRecord.read(gather_resources(request, service.prefetch, client), knowledge.reader, request.patient_id)
    return record, read_draft_orders(request, knowledge.reader, record.resolve)


def test_fhir(benchmark, case, client, knowledge):
    size, hook, raw, service = case
    _info(benchmark, "fhir", size, hook)
    request = _parsed(raw, service)
    resources = gather_resources(request, service.prefetch, client)

    def read():
        record = PatientRecord.read(resources, knowledge.reader, request.patient_id)
        read_draft_orders(request, knowledge.reader, record.resolve)

    benchmark.pedantic(read, **_rounds(size))


def test_engine(benchmark, case, client, knowledge):
    size, hook, raw, service = case
    _info(benchmark, "engine", size, hook)
    request = _parsed(raw, service)
    now = datetime.now(timezone.utc)

    def setup():
        record, drafts = _read(request, service, client, knowledge)  # reading paid here, outside the timing
        return (record, hook_context(request, drafts)), {}

    benchmark.pedantic(lambda record, context: apply_service(knowledge, service, record, context, now), setup=setup,
                       rounds=_rounds(size)["rounds"], warmup_rounds=1)


def test_cards(benchmark, case, client, knowledge):
    size, hook, raw, service = case
    _info(benchmark, "cards", size, hook)
    request = _parsed(raw, service)
    record, drafts = _read(request, service, client, knowledge)
    result = apply_service(knowledge, service, record, hook_context(request, drafts), datetime.now(timezone.utc))
    benchmark.pedantic(lambda: dumps_bytes(to_cds_response(result.cards, request.hook_instance)), rounds=200, iterations=1)


def _pipeline(raw, service, client, knowledge):
    now = datetime.now(timezone.utc)

    def pipeline():
        request = HookRequest.from_json(orjson.loads(raw), expected_hook=service.hook)
        decision = decide(knowledge, service, request, client, now)
        return dumps_bytes(decision.response(request.hook_instance))

    return pipeline


def test_pipeline(benchmark, case, client, knowledge):
    size, hook, raw, service = case
    _info(benchmark, "pipeline", size, hook)
    benchmark.pedantic(_pipeline(raw, service, client, knowledge), **_rounds(size))


def test_pipeline_repeat(benchmark, case, client, knowledge):
    size, hook, raw, service = case
    _info(benchmark, "pipeline-repeat", size, hook)
    benchmark.pedantic(_pipeline(raw, service, client, knowledge), **_rounds(size))


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    from cds_service.security import JwtVerifier, ReplayCache, load_trusted_issuers

    from .tokens import create_issuer

    directory = tmp_path_factory.mktemp("bench-auth")
    key_path, issuers_path = create_issuer(directory)
    state = directory / "state"
    state.mkdir(mode=0o700)
    verifier = JwtVerifier(load_trusted_issuers(issuers_path), ReplayCache(state))
    return verifier, key_path


def test_auth(benchmark, verifier):
    from .tokens import mint

    jwt_verifier, key_path = verifier
    aud = "http://127.0.0.1:8000/cds-services/b12-neuropathy-patient-view"
    tokens = iter(mint(key_path, aud, 400))
    benchmark.group = "auth"
    benchmark.extra_info.update({"stage": "auth", "size": 0, "hook": "any"})
    benchmark.pedantic(lambda: jwt_verifier.verify(next(tokens), [aud]), rounds=300, iterations=1, warmup_rounds=5)


def test_stage_list_is_complete():
    # Keeps the docstring table and the tests in step.
    names = {name.removeprefix("test_") for name in globals() if name.startswith("test_") and name != "test_stage_list_is_complete"}
    assert names == {"parse", "validate", "auth", "record", "fhir", "engine", "cards", "pipeline", "pipeline_repeat"}



