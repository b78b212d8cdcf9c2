"""Liveness for orchestrators and load balancers: knowledge loaded, process answering."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def health() -> Any:
    knowledge = current_app.extensions["cds_runtime"].knowledge
    return {"status": "ok", "services": len(knowledge.services), "recommendations": len(knowledge.recommendations)}
