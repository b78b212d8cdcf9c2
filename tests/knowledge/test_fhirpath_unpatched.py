"""Importing and using cds_service leaves fhirpathpy exactly as it was: nothing is patched."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Run in a fresh interpreter: in this one, cds_service is already imported.
_CHECK = textwrap.dedent("""
    import types
    import fhirpathpy, fhirpathpy.engine as engine
    from fhirpathpy.engine.evaluators import evaluators
    from fhirpathpy.engine.invocations import invocation_registry

    def snapshot():
        return {
            "engine": {name: value for name, value in vars(engine).items() if not name.startswith("__")},
            "evaluators": dict(evaluators),
            "invocations": {name: dict(entry) for name, entry in invocation_registry.items()},
            "fhirpathpy": {name: value for name, value in vars(fhirpathpy).items() if not name.startswith("__")},
        }

    before = snapshot()
    do_invoke, infix_invoke = engine.doInvoke, engine.infix_invoke

    from datetime import datetime, timezone
    from cds_service.fhir.client import FhirClient
    from cds_service.knowledge.loader import load_knowledge
    from cds_service.pipeline import decide
    from cds_service.protocol.models import HookRequest
    from cds_service.settings import DEFAULT_KNOWLEDGE_DIR
    from tests.support.scenarios import load_scenarios

    knowledge = load_knowledge(DEFAULT_KNOWLEDGE_DIR)
    scenario = next(s for s in load_scenarios() if "order" in s.request["hook"])
    request = HookRequest.from_json(scenario.request)
    decision = decide(knowledge, knowledge.service_for_hook(request.hook), request, FhirClient(),
                      scenario.now.astimezone(timezone.utc), explain=True)
    assert decision.traces

    after = snapshot()
    assert engine.doInvoke is do_invoke and engine.infix_invoke is infix_invoke
    for part in before:
        added = after[part].keys() - before[part].keys()
        # Importing a submodule (fhirpathpy.models) binds it on its package: that is all that may appear.
        assert all(isinstance(after[part][name], types.ModuleType) for name in added), (part, added)
        assert before[part].keys() <= after[part].keys(), part
        for name in before[part]:
            assert before[part][name] is after[part][name] or before[part][name] == after[part][name], (part, name)
    print("unchanged", len(after["evaluators"]), len(after["invocations"]))
""")


def test_fhirpathpy_is_not_modified_by_importing_or_evaluating() -> None:
    root = Path(__file__).resolve().parents[2]  # the check imports tests.support
    result = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, check=False, timeout=120, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("unchanged")
