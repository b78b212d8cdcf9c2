"""A real HTTP FHIR stand-in on loopback (for wire tests), serving FakeFhirServer's logic."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .fake_fhir import FakeFhirServer


class _Request:
    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        self.url = url
        self.headers = headers


@contextmanager
def serve_fhir(resources: Iterable[Mapping[str, Any]], token: str | None = None, **server: Any) -> Iterator[FakeFhirServer]:
    holder: dict[str, FakeFhirServer] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            server = holder["server"]
            status, headers, body = server._handle(_Request(f"http://127.0.0.1:{self.server.server_port}{self.path}", self.headers))
            payload = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", headers.get("Content-Type", "application/fhir+json"))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["server"] = FakeFhirServer(resources, base=f"http://127.0.0.1:{httpd.server_port}/fhir", token=token, **server)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["server"]
    finally:
        httpd.shutdown()
        httpd.server_close()
