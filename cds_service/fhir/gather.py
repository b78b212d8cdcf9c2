"""Gather the resources for one hook call: prefetch first, then the EHR's FHIR server.

Per prefetch key (CDS Hooks 2.0 "Prefetch template"):
- absent            -> fetch it from ``fhirServer`` with the ``fhirAuthorization`` token;
- ``null``          -> the EHR has no data for it: known empty, never refetched;
- a Bundle/resource -> used (a paged Bundle's ``next`` link is followed on the server);
- OperationOutcome  -> the EHR could not get it: unavailable, not blindly refetched.
Every key is data some recommendation needs, so anything unavailable is a 412.

Templates are written in R4 terms. A DSTU2 or STU3 server (its ``/metadata`` says which) is
asked for the same data under its own names (``MedicationOrder``, ``ProcedureRequest``...);
the resource reader then reads what comes back as R4.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from ..budget import WorkBudgetExceeded
from ..protocol.models import HookRequest
from ..security.fhir_servers import FhirServerList
from .client import FhirClient, FhirFetchError

log = logging.getLogger(__name__)

# What the caller is told when a fetch failed, whatever the cause: a refused connection, a timeout
# and a closed port must look alike, or the service becomes a port scanner (issue 11). The cause
# goes to the log under the reference given in the message.
FETCH_FAILED = "could not be fetched from the FHIR server (the service's log has the cause under reference {ref})"
NOT_ALLOWED = "not in prefetch, and fhirServer is not a FHIR server this client may name (its trusted issuer's fhir_servers)"

_TOKEN = re.compile(r"\{\{\s*([A-Za-z.]+)\s*\}\}")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


class DataUnavailable(Exception):
    """Data the recommendations need could not be had; maps prefetch key -> reason."""

    def __init__(self, problems: Mapping[str, str], reference: str | None = None) -> None:
        self.problems = dict(problems)
        self.reference = reference  # the log line with the causes of fetch failures, if any
        super().__init__("; ".join(f"{key}: {reason}" for key, reason in sorted(self.problems.items())))


def expand_prefetch_template(template: str, request: HookRequest) -> str | None:
    """Fill a prefetch template's tokens; None when a token has no value in this request."""
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        token = match.group(1)
        value: Any = None
        if token.startswith("context."):
            value = request.context.get(token.removeprefix("context."))
        elif token in _USER_TOKENS:
            resource_type, _, user_id = request.user_id.partition("/")
            value = user_id if resource_type == _USER_TOKENS[token] else None
        if not isinstance(value, (str, int)) or value == "":
            missing = True
            return ""
        return quote(str(value), safe="")

    rendered = _TOKEN.sub(substitute, template)
    return None if missing else rendered


def gather_resources(
    request: HookRequest,
    templates: Mapping[str, str],
    client: FhirClient,
    allow_http_fhir_server: bool = False,
    fhir_servers: FhirServerList | None = None,
) -> list[Any]:
    """The resources (raw JSON) the prefetch ``templates`` ask for; raises DataUnavailable.

    ``fhir_servers``: what the calling client may name as ``fhirServer`` (None: any, when
    authentication is off); WorkBudgetExceeded when the FHIR server sends too much."""
    resources: list[Any] = []
    to_fetch: dict[str, str] = {}
    problems: dict[str, str] = {}
    prefetch = request.prefetch or {}
    for key, template in templates.items():
        if request.prefetch is not None and key in prefetch:
            next_link = _take_prefetched(key, prefetch[key], resources, problems)
            if next_link:
                relative = _relative_to_server(next_link, request.fhir_server)
                if relative is None:
                    problems[key] = "the prefetch Bundle is paged and its next link is not on fhirServer"
                else:
                    to_fetch[key] = relative
            continue
        query = expand_prefetch_template(template, request)
        if query is None:
            problems[key] = "its prefetch template needs a context value this request does not have"
        else:
            to_fetch[key] = query
    reference = None
    if to_fetch:
        reference = _fetch(request, to_fetch, client, allow_http_fhir_server, fhir_servers, resources, problems)
    if problems:
        raise DataUnavailable(problems, reference)
    return resources


def _relative_to_server(link: str, server: str | None) -> str | None:
    """A paged prefetch's next link as a query on fhirServer (never another host)."""
    if not server:
        return None
    base = server.rstrip("/") + "/"
    if not link.startswith(base):
        return None
    return link[len(base):]


def _take_prefetched(key: str, value: Any, resources: list[Any], problems: dict[str, str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems[key] = "prefetch value is neither a FHIR resource nor null"
        return None
    resource_type = value.get("resourceType")
    if resource_type == "OperationOutcome":
        problems[key] = "the EHR reported an error (OperationOutcome) instead of this data"
        return None
    if resource_type != "Bundle":
        resources.append(value)
        return None
    entries, links = value.get("entry") or [], value.get("link") or []
    if not isinstance(entries, list) or not isinstance(links, list):
        problems[key] = "prefetch Bundle entry/link is not a list"
        return None
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        if (entry.get("search") or {}).get("mode") == "outcome":
            continue  # search warnings, not patient data
        resource = entry.get("resource")
        if isinstance(resource, Mapping):
            resources.append(resource)
    for link in links:
        if isinstance(link, Mapping) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


def _fetch(
    request: HookRequest,
    queries: dict[str, str],
    client: FhirClient,
    allow_http: bool,
    fhir_servers: FhirServerList | None,
    resources: list[Any],
    problems: dict[str, str],
) -> str | None:
    """Fetch the queries; the reference of the log line with the causes of failures, if any."""
    server = request.fhir_server
    if not server:
        for key in queries:
            problems[key] = "not in prefetch, and the request has no fhirServer to fetch it from"
        return None
    if urlsplit(server).scheme != "https" and not allow_http:
        for key in queries:
            problems[key] = "not in prefetch, and fhirServer is not https (CDS_ALLOW_HTTP_FHIR_SERVER allows http in development)"
        return None
    if fhir_servers is not None and not fhir_servers.allows(server):
        log.warning("fhirServer refused: not in the fhir_servers of the calling client's issuer")
        for key in queries:
            problems[key] = NOT_ALLOWED
        return None
    token = request.fhir_authorization.access_token if request.fhir_authorization else None
    results = client.fetch_many(server, queries, token, in_server_release=True)
    failures = {key: result for key, result in results.items() if isinstance(result, FhirFetchError)}
    if any(failure.reason == "too-large" for failure in failures.values()):
        raise WorkBudgetExceeded("the FHIR server sent more data than one call may read")
    for result in results.values():
        if not isinstance(result, FhirFetchError):
            resources.extend(result)
    if not failures:
        return None
    reference = uuid.uuid4().hex[:12]
    # Reason codes and resource types only: no URL, query or token.
    log.warning("FHIR fetch failures (reference %s): %s", reference,
                ", ".join(f"{f.resource_type}: {f.reason}" for f in failures.values()))
    for key in failures:
        problems[key] = FETCH_FAILED.format(ref=reference)
    return reference
