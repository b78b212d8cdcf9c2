"""SMART's Synthea R4 sample patients, written by nobody here, through patient-view.

Every patient: 200, every element the rules read is readable (no unreadable-data extension),
and the cards are the ones recorded and reviewed in ``expected-cards.json``. Three bundles are
vendored (so a user's clone checks something); the whole set is read from
``../shared/data/synthea-r4/`` where it exists.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_service.app import create_app
from cds_service.protocol.validation import response_errors

from .security.issuer import FakeIssuer
from .support.synthea import SHARED, VENDORED, bundle_files, load, patient_view_request

EXPECTED = json.loads((VENDORED / "expected-cards.json").read_text(encoding="utf-8"))["patients"]
BUNDLES = bundle_files()
PATH = "/cds-services/b12-neuropathy-patient-view"


def test_the_vendored_bundles_are_there_with_their_licence() -> None:
    assert len(list(VENDORED.glob("*_*.json"))) == 3
    assert "Apache License" in (VENDORED / "LICENSE").read_text(encoding="utf-8")


@pytest.mark.skipif(not SHARED.is_dir(), reason="the full Synthea set is not beside this clone")
def test_every_patient_of_the_full_set_has_reviewed_expectations() -> None:
    assert {path.name for path in SHARED.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("path", BUNDLES, ids=[path.name.split("_")[0] + "_" + path.name.split("_")[1] for path in BUNDLES])
def test_synthea_patient_view(path: Path, knowledge, auth_settings, issuer: FakeIssuer) -> None:
    service = knowledge.service_for_hook("patient-view")
    body, now = patient_view_request(load(path), dict(service.prefetch))
    app = create_app(auth_settings, knowledge=knowledge, clock=lambda: now)
    response = app.test_client().post(PATH, json=body, headers=issuer.headers(f"http://localhost{PATH}"))
    assert response.status_code == 200, response.get_json()
    payload = response.get_json()
    assert response_errors(payload) == []
    assert "extension" not in payload, payload.get("extension")  # nothing the rules need was unreadable
    cards = [[card["source"]["topic"]["code"], card["indicator"]] for card in payload["cards"]]
    assert cards == EXPECTED[path.name]["cards"], EXPECTED[path.name]["note"]
