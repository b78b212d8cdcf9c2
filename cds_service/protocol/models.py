"""Typed, immutable views of a validated CDS Hooks 2.0 service request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from .validation import validate_hook_request

__all__ = ["FhirAuthorization", "HookRequest"]


@dataclass(frozen=True, slots=True)
class FhirAuthorization:
    """``fhirAuthorization`` of a request: an OAuth 2.0 bearer token for ``fhirServer``."""

    # repr=False keeps the token out of repr()/str() and therefore out of logs and tracebacks.
    access_token: str = field(repr=False)
    token_type: str
    expires_in: int
    scope: str
    subject: str
    patient: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FhirAuthorization:
        """Build from an already-validated ``fhirAuthorization`` object."""
        return cls(
            access_token=data["access_token"],
            token_type=data["token_type"],
            expires_in=int(data["expires_in"]),  # JSON 300.0 is a valid integer too
            scope=data["scope"],
            subject=data["subject"],
            patient=data.get("patient"),
        )


@dataclass(frozen=True, slots=True)
class HookRequest:
    """A CDS Hooks call. ``context`` and ``prefetch`` are the parsed JSON, shared, not copied.

    They are kept out of repr() because they hold patient data and can be large.
    """

    hook: str
    hook_instance: str
    context: Mapping[str, Any] = field(repr=False)
    fhir_server: str | None
    fhir_authorization: FhirAuthorization | None
    prefetch: Mapping[str, Any] | None = field(repr=False)  # None: no "prefetch" member at all

    @classmethod
    def from_json(cls, body: object, expected_hook: str | None = None) -> HookRequest:
        """Validate ``body`` (raises RequestValidationError) and build the request."""
        validate_hook_request(body, expected_hook)
        body = cast(dict[str, Any], body)  # validate_hook_request guarantees a JSON object
        auth = body.get("fhirAuthorization")
        return cls(
            hook=body["hook"],
            hook_instance=body["hookInstance"],
            context=body["context"],
            fhir_server=body.get("fhirServer"),
            fhir_authorization=FhirAuthorization.from_json(auth) if auth is not None else None,
            prefetch=body.get("prefetch"),
        )

    @property
    def patient_id(self) -> str:
        return self._required_context("patientId")

    @property
    def user_id(self) -> str:
        return self._required_context("userId")

    @property
    def encounter_id(self) -> str | None:
        return self.context.get("encounterId")

    @property
    def draft_orders(self) -> tuple[dict[str, Any], ...]:
        """The resources in ``context.draftOrders.entry[].resource``; entries without one are skipped."""
        bundle = self.context.get("draftOrders")
        if not isinstance(bundle, dict):
            return ()
        entries = bundle.get("entry") or ()
        return tuple(
            entry["resource"]
            for entry in entries
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
        )

    @property
    def selections(self) -> tuple[str, ...]:
        return tuple(self.context.get("selections") or ())

    def _required_context(self, name: str) -> str:
        # Our three hooks require patientId and userId (the schema enforces it); for any other
        # hook the field may be absent, and failing loudly beats inventing an empty id.
        try:
            return str(self.context[name])
        except KeyError:
            raise KeyError(f"context.{name} is not present in this '{self.hook}' request") from None
