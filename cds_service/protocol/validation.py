"""CDS Hooks 2.0 wire-format validation.

Requests (hook calls, feedback) are checked against JSON Schemas and fail with one
``RequestValidationError`` naming the most relevant field. Our own outgoing documents
(hook responses, discovery) are checked by ``response_errors``/``discovery_errors``, which
list every schema error plus every breach of the spec's JSON hygiene rule (no null, "",
[] or {} anywhere).

Error messages are built from the schema and the instance *path* only, never from the
instance values: a request may carry ``fhirAuthorization.access_token``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from importlib.resources import files
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

__all__ = [
    "RequestValidationError",
    "discovery_errors",
    "response_errors",
    "validate_feedback_request",
    "validate_hook_request",
]

_FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER
# Without jsonschema[format-nongpl] "format": "uri" is silently a no-op; fail at import instead.
if "uri" not in _FORMAT_CHECKER.checkers:  # pragma: no cover - deployment error
    raise ImportError("jsonschema[format-nongpl] is required: the 'uri' format checker is missing")

_MAX_FIELD_CHARS = 256  # paths can contain client-chosen member names; keep errors small
_MAX_HOOK_CHARS = 64
_REDACTED = "[redacted]"
_MIN_SECRET_CHARS_FOR_MESSAGE_SCRUB = 8


def _load(name: str) -> Draft202012Validator:
    text = (files(__package__) / "schemas" / name).read_text(encoding="utf-8")
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    # Built once: jsonschema.validate() would re-check the schema on every call (~10 ms).
    return Draft202012Validator(schema, format_checker=_FORMAT_CHECKER)


def _load_fast(name: str) -> Any:
    """The same schema compiled by jsonschema-rs: it answers "valid?" in C (about 5 us for a
    100-resource request where the Python validator takes about 0.5 ms); only a request it
    refuses goes through the Python validator, whose errors name the field. A differential test
    (tests/protocol/test_request_validation.py) holds both to the same verdict."""
    text = (files(__package__) / "schemas" / name).read_text(encoding="utf-8")
    return jsonschema_rs.validator_for(json.loads(text), validate_formats=True)


_HOOK_REQUEST = _load("hook-request.schema.json")
_HOOK_REQUEST_FAST = _load_fast("hook-request.schema.json")
_HOOK_RESPONSE = _load("hook-response.schema.json")
_DISCOVERY_RESPONSE = _load("discovery-response.schema.json")
_FEEDBACK_REQUEST = _load("feedback-request.schema.json")


class RequestValidationError(ValueError):
    """A CDS Hooks request that does not match the wire format (answer with HTTP 400)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field or '(root)'}: {message}")
        self.field = field
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {"error": "invalid_request", "field": self.field, "message": self.message}


# --------------------------------------------------------------------------- requests


def validate_hook_request(body: object, expected_hook: str | None = None) -> None:
    """Raise RequestValidationError unless ``body`` is a valid CDS Hooks 2.0 service request."""
    if not isinstance(body, dict):
        raise RequestValidationError("", "request body must be a JSON object")
    secret = _access_token(body)
    hook = body.get("hook")
    # Checked first: a request for another hook would otherwise fail on that hook's context rules.
    if expected_hook is not None and isinstance(hook, str) and hook != expected_hook:
        shown = _clip(_scrub(hook, secret, always=True), _MAX_HOOK_CHARS)  # scrub first: clipping could split the token
        raise RequestValidationError("hook", f"this service answers '{expected_hook}', not '{shown}'")
    if _HOOK_REQUEST_FAST.is_valid(body):
        return
    _raise_best(_HOOK_REQUEST, body, secret)


def validate_feedback_request(body: object) -> None:
    """Raise RequestValidationError unless ``body`` is a valid ``{"feedback": [...]}`` request."""
    if not isinstance(body, dict):
        raise RequestValidationError("", "request body must be a JSON object")
    _raise_best(_FEEDBACK_REQUEST, body, None)


def _raise_best(validator: Draft202012Validator, body: dict[str, Any], secret: str | None) -> None:
    error = best_match(validator.iter_errors(body))
    if error is None:
        return
    field, message = _describe(error)
    field = _clip(_scrub(field, secret, always=True), _MAX_FIELD_CHARS)
    # Messages come from the schema alone; scrubbing them too is defence in depth, but only
    # for token-sized secrets so a one-letter "token" cannot garble the text.
    message = _scrub(message, secret, always=False)
    raise RequestValidationError(field, message)


def _access_token(body: Mapping[str, Any]) -> str | None:
    auth = body.get("fhirAuthorization")
    token = auth.get("access_token") if isinstance(auth, dict) else None
    return token if isinstance(token, str) and token else None


def _scrub(text: str, secret: str | None, *, always: bool) -> str:
    if not secret or secret not in text:
        return text
    if not always and len(secret) < _MIN_SECRET_CHARS_FOR_MESSAGE_SCRUB:
        return text
    return text.replace(secret, _REDACTED)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- responses


def response_errors(body: object) -> list[str]:
    """Every problem with a hook response we are about to send; [] when it is valid."""
    return _document_errors(_HOOK_RESPONSE, body, "hook response", exempt=(("cards",),))


def discovery_errors(body: object) -> list[str]:
    """Every problem with a discovery response; [] when it is valid."""
    # Spec section 1: a service list may be empty, so top-level "services": [] is exempt.
    return _document_errors(_DISCOVERY_RESPONSE, body, "discovery response", exempt=(("services",),))


def _document_errors(
    validator: Draft202012Validator,
    body: object,
    what: str,
    exempt: Collection[tuple[str | int, ...]],
) -> list[str]:
    if not isinstance(body, dict):
        return [f"(root): {what} must be a JSON object"]
    found: list[str] = []
    ordered = sorted(validator.iter_errors(body), key=lambda e: ([str(p) for p in e.absolute_path], e.validator))
    for error in ordered:
        found.append(_format(*_describe(error)))
    found.extend(_hygiene_errors(body, (), exempt))
    return list(dict.fromkeys(found))  # dedupe, keep order


def _format(field: str, message: str) -> str:
    return f"{field or '(root)'}: {message}"


def _hygiene_errors(
    node: object, path: tuple[str | int, ...], exempt: Collection[tuple[str | int, ...]]
) -> Iterator[str]:
    """S2 "Use of JSON": no null, "", [] or {}; optional members without a value are omitted."""
    where = _dotted(path) or "(root)"
    if node is None:
        yield f"{where}: null is not allowed (omit the member instead)"
    elif isinstance(node, str):
        if node == "":
            yield f"{where}: empty string is not allowed (omit the member instead)"
    elif isinstance(node, float):
        if not math.isfinite(node):
            yield f"{where}: {node} is not representable in JSON"
    elif isinstance(node, list):
        if not node and path not in exempt:
            yield f"{where}: empty array is not allowed (omit the member instead)"
        for index, item in enumerate(node):
            yield from _hygiene_errors(item, (*path, index), exempt)
    elif isinstance(node, dict):
        if not node and path not in exempt:
            yield f"{where}: empty object is not allowed (omit the member instead)"
        for key, value in node.items():
            yield from _hygiene_errors(value, (*path, key), exempt)


# --------------------------------------------------------------------------- messages


_JSON_TYPES: Sequence[tuple[type | tuple[type, ...], str]] = (
    (bool, "boolean"),  # before int: bool is an int subclass
    ((int, float), "number"),
    (str, "string"),
    ((list, tuple), "array"),
    (dict, "object"),
    (type(None), "null"),
)


def _json_type(value: object) -> str:
    for python_type, name in _JSON_TYPES:
        if isinstance(value, python_type):
            return name
    return type(value).__name__


def _dotted(path: Iterable[object]) -> str:
    return ".".join(str(part) for part in path)


def _first_missing(instance: object, names: Iterable[str]) -> str:
    present = instance if isinstance(instance, dict) else {}
    return next((name for name in names if name not in present), "")


def _describe(error: ValidationError) -> tuple[str, str]:
    """(dotted field, message) for one error, from the schema and path only (never the value)."""
    path: list[object] = list(error.absolute_path)
    keyword = error.validator
    expected: Any = error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance

    if keyword == "required":
        return _dotted([*path, _first_missing(instance, expected)]), "is required"
    if keyword == "dependentRequired":
        present = instance if isinstance(instance, dict) else {}
        for trigger, needed in expected.items():
            missing = _first_missing(present, needed) if trigger in present else ""
            if missing:
                return _dotted([*path, missing]), f"is required when '{trigger}' is present"
        return _dotted(path), "is missing a dependent member"
    if keyword == "additionalProperties":
        known = schema.get("properties", {})
        extra = sorted(key for key in (instance if isinstance(instance, dict) else {}) if key not in known)
        return _dotted([*path, extra[0]] if extra else path), "is not an allowed member"

    field = _dotted(path)
    if keyword == "type":
        names = expected if isinstance(expected, str) else " or ".join(expected)
        return field, f"must be of type {names}, not {_json_type(instance)}"
    if keyword == "const":
        return field, f"must be {json.dumps(expected)}"
    if keyword == "enum":
        return field, "must be one of: " + ", ".join(json.dumps(option) for option in expected)
    if keyword in ("pattern", "format"):
        if "description" in schema:
            return field, f"must be {schema['description']}"
        return field, (f"must match the pattern {expected}" if keyword == "pattern" else f"must be a valid {expected}")
    if keyword in ("minLength", "minItems", "minProperties") and expected == 1:
        return field, "must not be empty"
    sizes = {
        "minLength": f"must be at least {expected} characters long",
        "maxLength": f"must be at most {expected} characters long",
        "minItems": f"must have at least {expected} items",
        "maxItems": f"must have at most {expected} items",
        "minProperties": f"must have at least {expected} members",
        "maxProperties": f"must have at most {expected} members",
        "minimum": f"must be greater than or equal to {expected}",
        "maximum": f"must be less than or equal to {expected}",
    }
    if keyword in sizes:
        return field, sizes[keyword]
    if keyword == "propertyNames":
        return field, "has an invalid member name"
    return field, f"is invalid ({keyword})"


def check_prefetch_bundles(prefetch: Any, requested: Mapping[str, str]) -> None:
    """Bundle structure the prefetch reader relies on (the JSON Schema leaves Bundles open).

    In a key this service asked for, a Bundle whose ``entry`` or ``link`` is not an array, or
    whose entries are not objects, is not FHIR: 400 naming the member. Keys the service never
    asked for are ignored whatever they hold; what is inside a resource is the reader's to
    check (``fhir/reader.py``).
    """
    if not isinstance(prefetch, dict):
        return
    for key in requested:
        value = prefetch.get(key)
        if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
            continue
        where = f"prefetch.{key}"
        for index, entry in enumerate(_array_of_objects(value, "entry", where)):
            for member in ("resource", "search"):
                if entry.get(member) is not None and not isinstance(entry[member], dict):
                    raise RequestValidationError(f"{where}.entry.{index}.{member}", "must be of type object")
        _array_of_objects(value, "link", where)


def _array_of_objects(bundle: dict[str, Any], member: str, where: str) -> list[dict[str, Any]]:
    """``bundle[member]``, an optional array whose items must all be objects (else a 400 naming it)."""
    items = bundle.get(member)
    if items is None:
        return []
    if not isinstance(items, list):
        raise RequestValidationError(f"{where}.{member}", "must be of type array")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise RequestValidationError(f"{where}.{member}.{index}", "must be of type object")
    return items
