"""The FHIR servers a trusted issuer may name as ``fhirServer`` (its ``fhir_servers`` list).

The service fetches from ``fhirServer`` with the EHR's token, so the caller choosing that URL is
a server-side request forgery unless the URL is one its issuer is known to use. Entries:

* ``https://ehr.example.org/fhir/r4``   exactly this base URL (a trailing ``/`` is ignored);
* ``https://ehr.example.org/fhir/*``    ``/fhir`` itself or any base URL under it;
* ``http://localhost:*/*``              any port (for a locally run CDS Hooks sandbox; development).

Scheme and host compare case-insensitively, default ports are dropped, and a URL with userinfo,
a query, a fragment, dot segments, backslashes or control characters never matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from ..urls import split_http_url

_BAD = re.compile(r"[\\\x00-\x20\x7f]")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class FhirServerEntryError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class _Entry:
    scheme: str
    host: str
    port: int | None  # None: any port
    path: str  # without trailing "/"
    prefix: bool

    def matches(self, scheme: str, host: str, port: int, path: str) -> bool:
        if (scheme, host) != (self.scheme, self.host) or (self.port is not None and port != self.port):
            return False
        return path == self.path or (self.prefix and path.startswith(self.path + "/"))


@dataclass(frozen=True, slots=True)
class FhirServerList:
    entries: tuple[_Entry, ...] = ()
    source: tuple[str, ...] = ()

    def allows(self, url: str) -> bool:
        parsed = _parse(url)
        return parsed is not None and any(entry.matches(*parsed) for entry in self.entries)


def parse_fhir_servers(values: list[str]) -> FhirServerList:
    entries = []
    for value in values:
        prefix = value.endswith("/*")
        text = value[:-2] if prefix else value
        any_port = False
        match = re.fullmatch(r"(https?://[^/]+):\*(/.*)?", text)
        if match:
            any_port, text = True, match.group(1) + (match.group(2) or "")
        parsed = _parse(text)
        if parsed is None or "*" in text:
            raise FhirServerEntryError(
                f"{value!r} is not a FHIR server base URL like https://ehr.example.org/fhir (exact), "
                "https://ehr.example.org/fhir/* (any under it) or http://localhost:*/* (any port)")
        scheme, host, port, path = parsed
        entries.append(_Entry(scheme, host, None if any_port else port, path, prefix))
    return FhirServerList(tuple(entries), tuple(values))


def _parse(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path without trailing '/') of a plain http(s) URL, or None."""
    if not isinstance(url, str) or _BAD.search(url) or "?" in url or "#" in url:
        return None
    split = split_http_url(url)
    if split is None:
        return None
    scheme, host, port, parts = split
    path = parts.path.rstrip("/")
    if any(segment in (".", "..") for segment in unquote(path).split("/")):
        return None
    return scheme, host, port or _DEFAULT_PORTS[scheme], path
