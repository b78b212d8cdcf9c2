"""The Flask (WSGI) app behind an ASGI front that buffers each request before a thread sees it.

Why: a thread (or a sync worker) that reads a request itself can be held by one client that
sends its body a byte a second. Here the event loop reads the whole body, bounded in bytes
(413) and in time (408), and only a complete request goes to the thread pool that runs Flask,
so CPU-bound evaluation never runs on the event loop and slow clients cost a coroutine, not a
thread. Headers are read, with their own timeout, by the server in front (granian, in Rust).

The answer of a call that outlives ``call_timeout`` is a JSON 503 (the thread finishes on its
own; the pipeline's own budget normally ends it well before): no client ever gets an HTML error
page or a connection closed without a word.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from a2wsgi.wsgi import build_environ

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class BufferedWsgi:
    def __init__(self, app: WsgiApp, *, max_body_bytes: int, body_timeout: float, call_timeout: float, threads: int) -> None:
        self._app = app
        self._max_body = max_body_bytes
        self._body_timeout = body_timeout
        self._call_timeout = call_timeout
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cds-call")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets here
        declared = _content_length(scope)
        too_large = declared is not None and declared > self._max_body
        body = b""
        try:
            if not too_large:
                body = await asyncio.wait_for(self._read_body(receive), self._body_timeout)
        except _TooLarge:
            too_large = True
        except TimeoutError:
            await _json(send, 408, "request_timeout", f"the request body did not arrive within {self._body_timeout:g} s")
            return
        except _Disconnected:
            return
        environ: dict[str, Any] = dict(build_environ(_without_ambiguous_headers(scope), io.BytesIO(body)))  # type: ignore[arg-type]
        environ["wsgi.errors"] = sys.stderr
        if too_large:
            # Flask answers it (413 JSON, with CORS headers) from the length alone, reading nothing.
            environ["CONTENT_LENGTH"] = str(max(declared or 0, self._max_body + 1))
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self._pool, _run_wsgi, self._app, environ)
        try:
            status, headers, payload = await asyncio.wait_for(asyncio.shield(call), self._call_timeout)
        except TimeoutError:
            log.error("a call ran longer than %g s: answered 503 (its thread finishes on its own)", self._call_timeout)
            await _json(send, 503, "unavailable", "the call took too long; try again with less data", retry_after=True)
            return
        except Exception as exc:  # noqa: BLE001 (Flask answers its own errors; this is a bug in the front itself)
            log.error("the WSGI app failed outside Flask: %s", type(exc).__name__)
            await _json(send, 500, "internal_error", "internal error")
            return
        if too_large:
            headers.append((b"connection", b"close"))  # the unread body must not be read as a next request
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _run_wsgi(app: WsgiApp, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run one WSGI call in a pool thread; the whole response is collected (answers are small JSON)."""
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        started["status"] = int(status.split(" ", 1)[0])
        started["headers"] = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        return lambda data: None  # the legacy write() callable; Flask never uses it

    result = app(environ, start_response)
    try:
        payload = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return started["status"], started["headers"], payload


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _without_ambiguous_headers(scope: Scope) -> Scope:
    # "X_Forwarded_Proto" and "X-Forwarded-Proto" both become HTTP_X_FORWARDED_PROTO in WSGI:
    # drop header names with "_" (as gunicorn and nginx do) so one cannot pose as the other.
    headers = [(name, value) for name, value in scope.get("headers", []) if b"_" not in name]
    return {**scope, "headers": headers}


async def _json(send: Send, status: int, error: str, message: str, retry_after: bool = False) -> None:
    body = orjson.dumps({"error": error, "message": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    if retry_after:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
