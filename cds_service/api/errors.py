"""JSON error bodies: every 4xx/5xx says what went wrong in a machine-readable way."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

logger = logging.getLogger(__name__)

_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type"}


def json_error(status: int, error: str, message: str) -> tuple[dict[str, Any], int]:
    return {"error": error, "message": message}, status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            message = f"the request body is larger than the limit of {app.config['MAX_CONTENT_LENGTH']} bytes"
        body, status = json_error(status, _CODES.get(status, "http_error"), message)
        response = app.json.response(body)
        response.status_code = status
        valid_methods = getattr(exc, "valid_methods", None)
        if status == 405 and valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        # The type and where it happened go to the log, never the exception's text: that text can
        # hold a client string (a key, a value) with a newline in it. The client learns only that it failed.
        where = "".join(traceback.format_tb(exc.__traceback__)[-5:]).rstrip()
        logger.error("unhandled error while serving a request: %s\n%s", type(exc).__name__, where)
        response = app.json.response({"error": "internal_error", "message": "the service failed to process this request"})
        response.status_code = 500
        return response
