"""Regular expressions of FHIR R4 primitive values, shared by the reader and its fast path
(hl7.org/fhir/R4/datatypes.html; Reference.reference from references.html)."""

from __future__ import annotations

MAX_VALUES = 1000  # items of one list element of one resource: beyond it the element is refused, not walked
MAX_DATE_CHARS = 64  # a longer date/dateTime/instant is refused (FHIR sets no limit on a second's digits)

ID = r"[A-Za-z0-9\-.]{1,64}"
CODE = r"[^\s]+( [^\s]+)*"
TIME = r"(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d+)?"
ZONE = r"(?:Z|[+-](?:(?:0\d|1[0-3]):[0-5]\d|14:00))"
# Type/id[/_history/vid], an absolute URL or URN, or a #local (contained) id.
REFERENCE = (
    r"#[A-Za-z0-9\-.]{0,64}|[A-Za-z][A-Za-z0-9+.\-]*:\S+"
    rf"|[A-Z][A-Za-z]{{0,63}}/{ID}(?:/_history/{ID})?"
)
