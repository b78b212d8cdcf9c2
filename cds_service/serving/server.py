"""Run the service with granian: slow or idle clients cost the server nothing but a socket.

Measured (docs/performance.md, bench/slow_clients.py): with gunicorn's sync workers two clients
dripping header lines stalled everyone; gthread pins a thread per dripping client; granian's WSGI
mode pins a thread per client dripping its body. Granian's ASGI mode reads headers in Rust with a
timeout, and ``BufferedWsgi`` reads the body on the event loop, so the threads that run Flask only
ever see complete requests.
"""

from __future__ import annotations

import logging
from typing import Any

from granian import Granian
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings

from ..settings import Settings
from . import entry
from .asgi import BufferedWsgi

log = logging.getLogger(__name__)


def serve(app: Any, settings: Settings, host: str, port: int, workers: int) -> None:
    entry.PRELOADED = BufferedWsgi(app, max_body_bytes=settings.max_body_bytes, body_timeout=settings.body_read_timeout,
                                   call_timeout=settings.call_timeout, threads=settings.threads)
    server = Granian(
        "cds_service.serving.entry:app_factory",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        websockets=False,
        http=HTTPModes.http1,  # the header read timeout is an HTTP/1 setting; EHRs speak HTTP/1.1
        http1_settings=HTTP1Settings(header_read_timeout=int(settings.header_read_timeout * 1000)),
        log_access=False,  # access logs would carry patient ids in some clients' URLs
        respawn_failed_workers=True,
        # A call near the limits leaves the worker's heap large; a worker above this is replaced.
        workers_max_rss=settings.worker_max_rss_mib,
        rss_sample_interval=10,
        rss_samples=2,
    )
    server.serve()
