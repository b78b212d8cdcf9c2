"""The ASGI application granian's workers run (``cds_service.serving.entry:app``).

``cds-service serve`` builds the app before granian forks its workers, so they share the loaded
knowledge (and a broken file stops the start); a worker started by spawning builds its own.
"""

from __future__ import annotations

from typing import Any

PRELOADED: Any = None


def app_factory() -> Any:
    if PRELOADED is not None:
        return PRELOADED
    from ..app import create_app
    from ..settings import Settings
    from .asgi import BufferedWsgi

    settings = Settings.from_env()
    return BufferedWsgi(create_app(settings), max_body_bytes=settings.max_body_bytes,
                        body_timeout=settings.body_read_timeout, call_timeout=settings.call_timeout,
                        threads=settings.threads)
