"""The ASGI front of `cds-service serve` (cds_service/serving/asgi.py), driven as a server would.

It must hand Flask only complete requests, answer a too-large or too-slow body itself (413 through
Flask, 408), and turn a call past its timeout into a 503 JSON, never an HTML page.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from cds_service.serving.asgi import BufferedWsgi

SCOPE = {"type": "http", "method": "POST", "path": "/x", "query_string": b"", "http_version": "1.1", "scheme": "http",
         "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000), "root_path": "",
         "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]}


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    seen = {"length": environ.get("CONTENT_LENGTH"), "body": body.decode(), "forwarded": environ.get("HTTP_X_FORWARDED_PROTO"),
            "thread": threading.current_thread().name}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


def run(app: BufferedWsgi, messages: list[dict[str, Any]], scope: dict[str, Any] = SCOPE, gap: float = 0.0) -> tuple[int, dict, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if gap:
            await asyncio.sleep(gap)
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


def front(app: Any = echo_app, **limits: Any) -> BufferedWsgi:
    return BufferedWsgi(app, **{"max_body_bytes": 100, "body_timeout": 1.0, "call_timeout": 2.0, "threads": 2, **limits})


def test_a_body_in_pieces_reaches_the_app_whole_in_a_pool_thread() -> None:
    status, _, body = run(front(), [{"type": "http.request", "body": b'{"a":', "more_body": True},
                                    {"type": "http.request", "body": b' 1}', "more_body": False}])
    seen = json.loads(body)
    assert status == 200 and seen["body"] == '{"a": 1}' and seen["thread"].startswith("cds-call")


def test_a_body_over_the_limit_is_not_read_and_the_app_sees_its_length() -> None:
    status, headers, body = run(front(), [{"type": "http.request", "body": b"x" * 60, "more_body": True},
                                          {"type": "http.request", "body": b"x" * 60, "more_body": False}])
    assert status == 200  # the echo app answers; Flask answers 413 from CONTENT_LENGTH (tests/api)
    assert json.loads(body)["length"] == "101" and json.loads(body)["body"] == ""
    assert headers[b"connection"] == b"close"


def test_a_body_too_slow_is_408_json() -> None:
    started = time.monotonic()
    status, headers, body = run(front(body_timeout=0.3), [{"type": "http.request", "body": b"x", "more_body": True}] * 50, gap=0.1)
    assert status == 408 and json.loads(body)["error"] == "request_timeout"
    assert headers[b"content-type"] == b"application/json"
    assert time.monotonic() - started < 2


def test_a_call_past_its_timeout_is_503_json() -> None:
    def slow_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        time.sleep(1.0)
        start_response("200 OK", [])
        return [b"late"]

    status, headers, body = run(front(slow_app, call_timeout=0.2), [{"type": "http.request", "body": b"", "more_body": False}])
    assert status == 503 and json.loads(body)["error"] == "unavailable"
    assert headers[b"retry-after"] == b"5"


def test_an_error_outside_flask_is_500_json() -> None:
    def broken(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("client text\nforged")

    status, _, body = run(front(broken), [{"type": "http.request", "body": b"", "more_body": False}])
    assert status == 500 and json.loads(body) == {"error": "internal_error", "message": "internal error"}


def test_a_header_name_with_an_underscore_cannot_pose_as_x_forwarded_proto() -> None:
    scope = {**SCOPE, "headers": SCOPE["headers"] + [(b"x_forwarded_proto", b"https")]}
    status, _, body = run(front(), [{"type": "http.request", "body": b"", "more_body": False}], scope=scope)
    assert status == 200 and json.loads(body)["forwarded"] is None
