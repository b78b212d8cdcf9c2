"""An unhandled error is logged by type and place, never by its text (which may hold a client string)."""

from __future__ import annotations

import logging

from cds_service.app import create_app

from ..security.issuer import insecure_settings


def test_an_unhandled_error_logs_no_client_string(knowledge, caplog) -> None:
    app = create_app(insecure_settings(), knowledge=knowledge)

    @app.get("/boom/<value>")
    def boom(value: str) -> str:
        raise KeyError(value)  # the client's string, newline included

    caplog.set_level(logging.DEBUG)
    response = app.test_client().get("/boom/ZZMARKERZZ%0A2026-12-01%20INFO%20forged")
    assert response.status_code == 500
    assert response.get_json() == {"error": "internal_error", "message": "the service failed to process this request"}
    assert "KeyError" in caplog.text
    assert "ZZMARKERZZ" not in caplog.text and "forged" not in caplog.text
