"""The one way this service takes an http(s) URL apart (an aud, a fhirServer, a FHIR link)."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


def split_http_url(url: str) -> tuple[str, str, int | None, SplitResult] | None:
    """(lower-cased scheme, lower-cased host, explicit port or None, the parts) of an http or https
    URL with a host and no userinfo; None for anything else (an unparseable port included).
    Userinfo is refused everywhere: requests would turn it into Basic auth, and an aud or a
    server list entry with it is not the URL it looks like."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    return scheme, parts.hostname.lower(), port, parts
