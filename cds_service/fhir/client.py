"""FHIR REST client for the CDS Hooks prefetch fallback (CDS Hooks 2.0, "FHIR resource access").

When a prefetch key is missing, the service fetches the rendered template from the EHR's
`fhirServer` with the bearer token from `fhirAuthorization`. The results contain PHI and the
token grants access to the EHR, so this module:

* never logs or puts into an exception message the token, URLs or query strings (they carry
  patient ids); requests/orjson exceptions are never chained into ours because their text
  embeds URLs or document content;
* sends the token only to the origin (scheme, host, port) of `fhirServer`: paging links and
  redirects to any other origin are refused before a request is made;
* bounds every fetch in time (connect/read timeouts plus a wall-clock deadline), pages,
  entries and bytes, so a slow or hostile server cannot stall or exhaust a worker;
* connects only to public addresses (``egress.py``; loopback and private ones in development),
  with a Session of its own per call whose sockets are shut down when the deadline passes, and
  waits for its threads: nothing of a call outlives it;
* stays under the ``fhirServer`` base path: paging links and redirects elsewhere on the same
  host are refused (the base itself is checked against the issuer's list by the caller).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import orjson
import requests
import urllib3.exceptions

from ..urls import split_http_url
from . import versions
from .egress import AddressRefused, EgressSession

log = logging.getLogger(__name__)

_RELEASE_TTL = 3600.0  # seconds a server's FHIR version is remembered
_RELEASE_RETRY = 60.0  # ... or, when /metadata failed, until it is asked again
_RELEASE_CACHE_MAX = 256  # servers remembered per worker

_ACCEPT = "application/fhir+json"
_CHUNK = 64 * 1024
_MAX_REDIRECTS = 5
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
# First path segment of a query, used as the only query-derived text we ever log.
_TYPE_RE = re.compile(r"[A-Za-z]{1,64}")
# Instance read (optionally a vread): answered by the resource itself, not by a Bundle.
_READ_RE = re.compile(r"([A-Z][A-Za-z]{0,63})/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?")
# RFC 7230 header value without whitespace: stops header injection via a crafted token.
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")
# Characters on which URL parsers disagree (backslash, tabs/newlines, controls): refuse such URLs.
_AMBIGUOUS_URL_RE = re.compile(r"[\\\x00-\x1f\x7f]")

Origin = tuple[str, str, int]


class FhirFetchError(Exception):
    """A FHIR fetch failed. `reason` is a short machine code; str() is safe to log."""

    def __init__(self, reason: str, resource_type: str = "FHIR", detail: str = "") -> None:
        self.reason = reason
        self.resource_type = resource_type
        self.detail = detail
        message = f"{resource_type} fetch failed: {reason}"
        super().__init__(f"{message} ({detail})" if detail else message)

    def __reduce__(self) -> tuple[Any, ...]:  # keep reason/resource_type intact when pickled
        return (type(self), (self.reason, self.resource_type, self.detail))


@dataclass(frozen=True)
class FetchLimits:
    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    total_timeout: float = 8.0  # wall-clock deadline for one fetch()/fetch_many() call
    max_pages: int = 50  # per query, following Bundle.link[relation=next]
    max_entries: int = 20_000  # per query
    max_response_bytes: int = 16 * 1024 * 1024  # per HTTP response (decoded)
    max_call_bytes: int = 24 * 1024 * 1024  # all responses of one call together, /metadata included
    max_workers: int = 8
    # Development only: let fhirServer resolve to loopback or private addresses.
    allow_private_addresses: bool = False


class _Budget:
    """Bytes left for one call, shared by its threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            self._used += size
            return self._used <= self.limit


@dataclass
class _Call:
    """One call's deadline, stop flag, byte budget and connections."""

    deadline: float
    stop: threading.Event
    budget: _Budget
    egress: EgressSession


class FhirClient:
    """Thread-safe. Each fetch_many() call has its own Session and threads, all gone when it returns."""

    def __init__(self, limits: FetchLimits | None = None) -> None:
        self._limits = limits or FetchLimits()
        self._releases: dict[str, tuple[str, float]] = {}  # normalised base URL -> (release, valid until)
        self._releases_lock = threading.Lock()

    def close(self) -> None:
        """Nothing to release: connections live only as long as one call."""

    def _release(self, base_url: str, token: str | None, call: _Call) -> str:
        """'1.0' (DSTU2), '3.0' (STU3) or '4.0' (R4 and anything else), from the server's
        CapabilityStatement.fhirVersion at ``/metadata``; remembered an hour per server. A server
        whose metadata cannot be read is taken as R4, and asked again a minute later."""
        try:
            base, origin = _normalize_base(base_url, "CapabilityStatement")
        except FhirFetchError:
            return "4.0"  # the queries themselves will fail and say why
        now = time.monotonic()
        with self._releases_lock:
            known = self._releases.get(base)
        if known is not None and known[1] > now:
            return known[0]
        headers = {"Accept": _ACCEPT}
        if token and _TOKEN_RE.fullmatch(token):
            headers["Authorization"] = f"Bearer {token}"
        try:
            url = _same_origin(base + "metadata", origin, base, "CapabilityStatement", "connection")
            body = self._get_json(url, origin, base, headers, "CapabilityStatement", call)
        except FhirFetchError as exc:
            log.warning("FHIR server metadata unavailable (%s): its FHIR version is taken to be R4", exc.reason)
            release, valid = "4.0", now + _RELEASE_RETRY
        except Exception as exc:  # noqa: BLE001 (a bug must not fail the call; its text may hold a URL)
            log.error("FHIR server metadata read crashed: %s", type(exc).__name__)
            release, valid = "4.0", now + _RELEASE_RETRY
        else:
            declared = body.get("fhirVersion") if body.get("resourceType") in ("CapabilityStatement", "Conformance") else None
            release, valid = versions.release(declared), now + _RELEASE_TTL
        with self._releases_lock:
            if len(self._releases) >= _RELEASE_CACHE_MAX:
                self._releases.clear()
            self._releases[base] = (release, valid)
        return release

    def fetch(self, base_url: str, relative_query: str, access_token: str | None) -> list[dict[str, Any]]:
        """Read (`Patient/1` -> [resource]) or search (`Observation?...` -> all entry resources)."""
        result = self.fetch_many(base_url, {"query": relative_query}, access_token)["query"]
        if isinstance(result, FhirFetchError):
            raise result
        return result

    def fetch_many(
        self, base_url: str, queries: Mapping[str, str], access_token: str | None, in_server_release: bool = False
    ) -> dict[str, list[dict[str, Any]] | FhirFetchError]:
        """Run the queries concurrently; map each key to its resources or its FhirFetchError.

        With ``in_server_release``, queries written in R4 terms are first renamed to what the
        server's FHIR version calls them (``MedicationRequest`` -> ``MedicationOrder`` on DSTU2),
        reading its ``/metadata`` within the same time budget.

        Returns by about `total_timeout`: queries still running then become "deadline"; their
        sockets are shut down and their threads waited for.
        """
        if not queries:
            return {}
        limits = self._limits
        call = _Call(time.monotonic() + limits.total_timeout, threading.Event(), _Budget(limits.max_call_bytes),
                     EgressSession(limits.allow_private_addresses, limits.max_workers))
        pool = cf.ThreadPoolExecutor(max_workers=max(1, min(limits.max_workers, len(queries))), thread_name_prefix="fhir-fetch")
        futures: dict[str, cf.Future[Any]] = {}
        started: list[cf.Future[Any]] = []
        late: set[str] = set(queries)  # keys not done by the deadline: "deadline", whatever they end with
        try:
            if in_server_release and _version_matters(queries):
                release = pool.submit(self._release, base_url, access_token, call)
                started.append(release)
                cf.wait([release], timeout=max(0.0, call.deadline - time.monotonic()))
                renames = versions.SEARCH_TYPES.get(release.result() if release.done() else "4.0", {})
                queries = {key: _in_release(query, renames) for key, query in queries.items()}
            for key, query in queries.items():
                futures[key] = pool.submit(self._fetch_safe, base_url, query, access_token, call)
            started.extend(futures.values())
            cf.wait(futures.values(), timeout=max(0.0, call.deadline - time.monotonic()))
            late = {key for key, future in futures.items() if not future.done()}
        finally:
            # The deadline really ends the call: stragglers are told to stop, their sockets are shut
            # down (a blocked read returns at once), and their threads are waited for.
            call.stop.set()
            call.egress.cut()
            pool.shutdown(wait=False, cancel_futures=True)
            # (A cancelled future never counts as done for cf.wait: leave those out.)
            _, stuck = cf.wait([f for f in started if not f.cancelled()], timeout=limits.connect_timeout + 1.0)
            if stuck:  # a host name lookup cannot be interrupted; it ends by itself
                log.warning("FHIR fetch: %d thread(s) still running %.1f s after the deadline", len(stuck),
                            limits.connect_timeout + 1.0)
            else:
                pool.shutdown(wait=True)  # every task is done: the idle threads exit now, joined
            call.egress.close()

        results: dict[str, list[dict[str, Any]] | FhirFetchError] = {}
        for key, future in futures.items():
            if key not in late and future.done() and not future.cancelled():
                result = future.result()
            else:
                result = FhirFetchError(
                    "deadline", _resource_type(queries[key]), f"total_timeout {self._limits.total_timeout}s"
                )
            if isinstance(result, FhirFetchError):
                log.warning("FHIR %s fetch failed: %s", result.resource_type, result.reason)
            results[key] = result
        return results

    # -- internals -------------------------------------------------------------------------

    def _fetch_safe(self, base_url: str, query: str, token: str | None, call: _Call) -> list[dict[str, Any]] | FhirFetchError:
        try:
            return self._fetch(base_url, query, token, call)
        except FhirFetchError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 (a bug must not fail the other keys; its text may hold PHI)
            log.error("FHIR %s fetch crashed: %s", _resource_type(query), type(exc).__name__)
            return FhirFetchError("connection", _resource_type(query), "internal error")

    def _fetch(self, base_url: str, query: str, token: str | None, call: _Call) -> list[dict[str, Any]]:
        rtype = _resource_type(query)
        base, origin = _normalize_base(base_url, rtype)
        if not isinstance(query, str) or not _TYPE_RE.fullmatch(_head(query)):
            raise FhirFetchError("connection", rtype, "query does not start with a resource type")
        headers = {"Accept": _ACCEPT}
        if token:
            if not _TOKEN_RE.fullmatch(token):
                raise FhirFetchError("connection", rtype, "malformed access token")
            headers["Authorization"] = f"Bearer {token}"

        path = query.lstrip("/")
        read = _READ_RE.fullmatch(path.split("?", 1)[0])
        # Plain concatenation (not urljoin) keeps base paths like /fhir/r4 and can't change host.
        url = _same_origin(base + path, origin, base, rtype, "connection")
        limits = self._limits
        resources: list[dict[str, Any]] = []
        seen: set[str] = set()
        for _page in range(limits.max_pages):
            body = self._get_json(url, origin, base, headers, rtype, call)
            kind = body["resourceType"]
            if kind == "OperationOutcome":
                raise FhirFetchError("operation-outcome", rtype)
            if read:
                if kind != read.group(1):
                    raise FhirFetchError("unexpected-resource", rtype, f"read returned {_safe_type(kind)}")
                return [body]
            if kind != "Bundle":
                raise FhirFetchError("unexpected-resource", rtype, f"search returned {_safe_type(kind)}")
            resources.extend(_bundle_resources(body, rtype))
            if len(resources) > limits.max_entries:
                raise FhirFetchError("too-many-entries", rtype, f"limit {limits.max_entries}")
            link = _next_link(body, rtype)
            if link is None:
                return resources
            seen.add(url)
            # Relative links resolve against the base (spec); every link must stay on its origin.
            url = _same_origin(urljoin(base, link), origin, base, rtype, "cross-origin-link")
            if url in seen:
                raise FhirFetchError("too-many-pages", rtype, "next link loops")
        raise FhirFetchError("too-many-pages", rtype, f"limit {limits.max_pages}")

    def _get_json(self, url: str, origin: Origin, base: str, headers: dict[str, str], rtype: str, call: _Call) -> dict[str, Any]:
        # Redirects are followed by hand so that each hop gets the origin and base path check.
        for _hop in range(_MAX_REDIRECTS + 1):
            resp = self._send(url, headers, rtype, call)
            with resp:
                status = resp.status_code
                if status in _REDIRECT_CODES and resp.headers.get("Location"):
                    url = _same_origin(urljoin(url, resp.headers["Location"]), origin, base, rtype, "cross-origin-link")
                    continue
                _check_status(status, rtype)
                raw = self._read_body(resp, rtype, call)
            return _parse(raw, rtype)
        raise FhirFetchError("too-many-pages", rtype, "redirect loop")

    def _send(self, url: str, headers: dict[str, str], rtype: str, call: _Call) -> requests.Response:
        remaining = call.deadline - time.monotonic()
        if remaining <= 0 or call.stop.is_set():
            raise FhirFetchError("deadline", rtype, f"total_timeout {self._limits.total_timeout}s")
        timeout = (min(self._limits.connect_timeout, remaining), min(self._limits.read_timeout, remaining))
        try:
            return call.egress.session.get(url, headers=headers, timeout=timeout, stream=True, allow_redirects=False)
        except (requests.RequestException, urllib3.exceptions.HTTPError, ValueError) as exc:
            error = _transport_error(exc, rtype)
        raise error  # outside the except block: no __context__ holding the URL-bearing exception

    def _read_body(self, resp: requests.Response, rtype: str, call: _Call) -> bytearray:
        limit = self._limits.max_response_bytes
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FhirFetchError("too-large", rtype, f"limit {limit} bytes")
        buf = bytearray()
        try:
            for chunk in resp.iter_content(chunk_size=_CHUNK):
                buf += chunk
                if len(buf) > limit:  # decoded size, so gzip bombs are caught too
                    raise FhirFetchError("too-large", rtype, f"limit {limit} bytes")
                if not call.budget.take(len(chunk)):
                    raise FhirFetchError("too-large", rtype, f"call limit {call.budget.limit} bytes")
                # A server dripping bytes never trips the read timeout; the deadline still holds
                # (and past it the socket is shut down under this thread).
                if time.monotonic() > call.deadline or call.stop.is_set():
                    raise FhirFetchError("deadline", rtype, f"total_timeout {self._limits.total_timeout}s")
        except (requests.RequestException, urllib3.exceptions.HTTPError, ValueError) as exc:
            error = _transport_error(exc, rtype)
        else:
            return buf
        raise error


_RENAMED_BEFORE_R4 = frozenset(name for names in versions.SEARCH_TYPES.values() for name in names)


def _version_matters(queries: Mapping[str, str]) -> bool:
    return any(_resource_type(query) in _RENAMED_BEFORE_R4 for query in queries.values())


def _in_release(query: str, renames: Mapping[str, str]) -> str:
    """``MedicationRequest?patient=1`` as a DSTU2 server names it: ``MedicationOrder?patient=1``."""
    resource_type = _resource_type(query)
    if resource_type not in renames:
        return query
    stripped = query.lstrip("/")
    return renames[resource_type] + stripped[len(resource_type):]


def _head(query: str) -> str:
    return re.split(r"[?/]", query.lstrip("/"), maxsplit=1)[0]


def _resource_type(query: object) -> str:
    """The part of the query before `?` or `/`, if it looks like a type name (safe to log)."""
    if isinstance(query, str) and _TYPE_RE.fullmatch(_head(query)):
        return _head(query)
    return "unknown"


def _safe_type(value: object) -> str:
    return value if isinstance(value, str) and _TYPE_RE.fullmatch(value) else "unknown"


def _origin(url: str) -> Origin | None:
    # Userinfo is refused there: requests would turn it into Basic auth in place of the bearer token.
    split = split_http_url(url)
    if split is None:
        return None
    scheme, host, port, _parts = split
    return scheme, host, port or (443 if scheme == "https" else 80)


def _normalize_base(base_url: object, rtype: str) -> tuple[str, Origin]:
    """`https://ehr/fhir/r4` or `.../r4/` -> `https://ehr/fhir/r4/` and its origin."""
    if not isinstance(base_url, str) or _AMBIGUOUS_URL_RE.search(base_url.strip()):
        raise FhirFetchError("connection", rtype, "invalid fhirServer URL")
    base = base_url.strip()
    origin = _origin(base)
    if origin is None:
        raise FhirFetchError("connection", rtype, "fhirServer must be an http(s) URL")
    parts = urlsplit(base)
    if parts.query or parts.fragment:
        raise FhirFetchError("connection", rtype, "fhirServer URL has a query or fragment")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/", "", "")), origin


def _same_origin(url: str, origin: Origin, base: str, rtype: str, reason: str) -> str:
    """Return the URL requests will actually send, or raise if it leaves `origin` or the `base` path."""
    url = url.split("#", 1)[0]
    if _AMBIGUOUS_URL_RE.search(url) or _origin(url) != origin or not _under_base(url, base):
        raise FhirFetchError(reason, rtype, "URL outside the fhirServer origin")
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
    except (requests.RequestException, ValueError):
        prepared.url = None
    # Check the normalised form too, so a parser differential can't smuggle another host in.
    if prepared.url is None or _origin(prepared.url) != origin:
        raise FhirFetchError(reason, rtype, "URL outside the fhirServer origin")
    return prepared.url


def _under_base(url: str, base: str) -> bool:
    """The path is the base path or below it, without dot segments (a server would resolve them)."""
    path = urlsplit(url).path
    base_path = urlsplit(base).path.rstrip("/")
    if any(segment in (".", "..") for segment in unquote(path).split("/")):
        return False
    return path.rstrip("/") == base_path or path.startswith(base_path + "/")


def _transport_error(exc: BaseException, rtype: str) -> FhirFetchError:
    log.debug("FHIR %s transport error: %s", rtype, type(exc).__name__)  # type only: text has the URL
    if _caused_by(exc, AddressRefused):
        return FhirFetchError("address-refused", rtype, "fhirServer resolves to a non-public address")
    inner = exc.args[0] if exc.args else None
    # requests reports a read timeout while streaming the body as ConnectionError(ReadTimeoutError).
    if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError)) or isinstance(
        inner, urllib3.exceptions.TimeoutError
    ):
        return FhirFetchError("timeout", rtype)
    return FhirFetchError("connection", rtype)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is somewhere in the chain requests and urllib3 wrap around a socket error."""
    seen: list[object] = [exc]
    for _ in range(8):
        if not seen:
            return False
        current = seen.pop()
        if isinstance(current, kind):
            return True
        if isinstance(current, BaseException):
            seen.extend(item for item in (current.__cause__, current.__context__, getattr(current, "reason", None),
                                          current.args[0] if current.args else None) if item is not None)
    return False


def _check_status(status: int, rtype: str) -> None:
    if 200 <= status < 300:
        return
    if status in (401, 403, 404):
        raise FhirFetchError(f"http-{status}", rtype)
    if 400 <= status < 500:
        raise FhirFetchError("http-4xx", rtype, f"HTTP {status}")
    if 500 <= status < 600:
        raise FhirFetchError("http-5xx", rtype, f"HTTP {status}")
    raise FhirFetchError("unexpected-resource", rtype, f"HTTP {status}")  # 1xx/3xx without Location


def _parse(raw: bytes | bytearray, rtype: str) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        error: FhirFetchError | None = FhirFetchError("invalid-json", rtype)
    else:
        error = None
    if error is not None:
        raise error  # outside the except block: the decode error's .doc holds the response body
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise FhirFetchError("unexpected-resource", rtype, "not a FHIR resource")
    return body


def _bundle_resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise FhirFetchError("unexpected-resource", rtype, "Bundle.entry is not a list")
    resources: list[dict[str, Any]] = []
    outcomes = 0
    for entry in entries:
        if not isinstance(entry, dict):
            raise FhirFetchError("unexpected-resource", rtype, "malformed Bundle.entry")
        search = entry.get("search")
        if isinstance(search, dict) and search.get("mode") == "outcome":
            outcomes += 1  # server warnings about the search, not matches
            continue
        resource = entry.get("resource")
        if resource is None:
            continue
        if not isinstance(resource, dict):
            raise FhirFetchError("unexpected-resource", rtype, "malformed Bundle.entry.resource")
        resources.append(resource)
    if outcomes:
        log.debug("FHIR %s search: skipped %d outcome entries", rtype, outcomes)
    return resources


def _next_link(bundle: dict[str, Any], rtype: str) -> str | None:
    links = bundle.get("link") or []
    if not isinstance(links, list):
        raise FhirFetchError("unexpected-resource", rtype, "Bundle.link is not a list")
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if not isinstance(url, str) or not url.strip():
                raise FhirFetchError("unexpected-resource", rtype, "next link without url")
            return url.strip()
    return None
