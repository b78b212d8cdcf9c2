"""A FHIR server stand-in for `responses`: type searches by patient and code, reads, paging.

It serves real search semantics (patient reference, comma-separated code tokens, paging
with `next` links, bearer token check), so a test that drops prefetch proves the service's
own queries find the data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import responses

BASE = "https://ehr.example.org/fhir"


class FakeFhirServer:
    def __init__(
        self, resources: Iterable[Mapping[str, Any]], base: str = BASE, token: str | None = None, page_size: int = 2,
        fhir_version: str | None = None, types: Iterable[str] | None = None,
    ) -> None:
        """``fhir_version``: answer ``/metadata`` with it (a DSTU2 "1.0.2" server sends a
        Conformance); ``types``: the only resource types the server knows (others are 404)."""
        self.base = base.rstrip("/")
        self.token = token
        self.page_size = page_size
        self.fhir_version = fhir_version
        self.types = set(types) if types is not None else None
        self.by_type: dict[str, list[Mapping[str, Any]]] = {}
        for resource in resources:
            self.by_type.setdefault(resource["resourceType"], []).append(resource)
        self.requests: list[str] = []

    def install(self, mock: responses.RequestsMock) -> None:
        pattern = re.compile(re.escape(self.base) + r"/[A-Za-z]+.*")
        mock.add_callback(responses.GET, pattern, callback=self._handle)

    def _handle(self, request: Any) -> tuple[int, dict[str, str], str]:
        self.requests.append(request.url)
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {}, json.dumps({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]})
        parts = urlsplit(request.url)
        path = parts.path[len(urlsplit(self.base).path):].strip("/").split("/")
        if path == ["metadata"] and self.fhir_version:
            kind = "Conformance" if self.fhir_version.startswith("1.") else "CapabilityStatement"
            return 200, {"Content-Type": "application/fhir+json"}, json.dumps({"resourceType": kind, "fhirVersion": self.fhir_version})
        if self.types is not None and path[0] not in self.types:
            return 404, {}, json.dumps({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported"}]})
        if len(path) == 2:
            return self._read(*path)
        return self._search(path[0], {k: v[0] for k, v in parse_qs(parts.query).items()})

    def _read(self, resource_type: str, resource_id: str) -> tuple[int, dict[str, str], str]:
        for resource in self.by_type.get(resource_type, []):
            if resource.get("id") == resource_id:
                return 200, {"Content-Type": "application/fhir+json"}, json.dumps(resource)
        return 404, {}, json.dumps({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]})

    def _search(self, resource_type: str, params: dict[str, str]) -> tuple[int, dict[str, str], str]:
        patient = params.get("patient", "").removeprefix("Patient/")
        codes = set(params["code"].split(",")) if "code" in params else None
        matches = [
            r for r in self.by_type.get(resource_type, [])
            if _subject(r) == patient and (codes is None or any(c.get("code") in codes for c in _codings(r)))
        ]
        offset = int(params.get("_offset", "0"))
        page = matches[offset: offset + self.page_size]
        bundle: dict[str, Any] = {
            "resourceType": "Bundle", "type": "searchset", "total": len(matches),
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in page],
        }
        if offset + self.page_size < len(matches):
            next_params = {**params, "_offset": str(offset + self.page_size)}
            bundle["link"] = [{"relation": "next", "url": f"{self.base}/{resource_type}?{urlencode(next_params)}"}]
        return 200, {"Content-Type": "application/fhir+json"}, json.dumps(bundle)


def _subject(resource: Mapping[str, Any]) -> str:
    reference = (resource.get("subject") or resource.get("patient") or {}).get("reference", "")
    return reference.removeprefix("Patient/")


def _codings(resource: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    concept = resource.get("code") or resource.get("medicationCodeableConcept") or {}
    return list(concept.get("coding") or [])


def resources_from_prefetch(prefetch: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    resources: list[Mapping[str, Any]] = []
    for value in prefetch.values():
        if isinstance(value, Mapping) and value.get("resourceType") == "Bundle":
            resources.extend(entry["resource"] for entry in value.get("entry", []) if "resource" in entry)
        elif isinstance(value, Mapping):
            resources.append(value)
    return resources
