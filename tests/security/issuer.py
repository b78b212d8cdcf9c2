"""A CDS client for tests: a freshly generated key pair that signs CDS Hooks JWTs like an EHR."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from cds_service.settings import Settings

_CURVES = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}
_REMOVE = object()
# The FHIR servers test clients name: the responses stand-in and loopback stand-ins on any port.
TEST_FHIR_SERVERS = ("https://ehr.example.org/fhir", "http://127.0.0.1:*/*", "http://localhost:*/*")


class FakeIssuer:
    def __init__(self, iss: str = "https://ehr.test.example", alg: str = "ES384", kid: str | None = None) -> None:
        self.iss = iss
        self.alg = alg
        self.kid = kid or f"test-{alg.lower()}-{uuid.uuid4().hex[:8]}"
        if alg.startswith("ES"):
            self.private_key: Any = ec.generate_private_key(_CURVES[alg]())
        else:
            self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def public_jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        algorithm = ECAlgorithm if self.alg.startswith("ES") else RSAAlgorithm
        jwk = json.loads(algorithm.to_jwk(self.private_key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig"})
        if with_alg:
            jwk["alg"] = self.alg
        return jwk

    def jwks(self, **kwargs: Any) -> dict[str, Any]:
        return {"keys": [self.public_jwk(**kwargs)]}

    def entry(self, **extra: Any) -> dict[str, Any]:
        """This issuer's object in a trusted issuers file (inline JWKS), naming the test FHIR servers."""
        return {"jwks": self.jwks(), "fhir_servers": list(TEST_FHIR_SERVERS), **extra}

    def claims(self, aud: str | list[str], *, lifetime: float = 300, now: float | None = None) -> dict[str, Any]:
        issued = int(time.time() if now is None else now)
        return {"iss": self.iss, "aud": aud, "exp": issued + int(lifetime), "iat": issued, "jti": str(uuid.uuid4())}

    def token(
        self,
        aud: str | list[str],
        *,
        lifetime: float = 300,
        now: float | None = None,
        claims: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        key: Any = None,
        alg: str | None = None,
    ) -> str:
        """A signed token; a claim or header given as REMOVE is left out."""
        payload = _merge(self.claims(aud, lifetime=lifetime, now=now), claims)
        header = _merge({"typ": "JWT", "kid": self.kid}, headers)
        header.setdefault("typ", None)  # PyJWT adds typ JWT unless told None
        return jwt.encode(payload, self.private_key if key is None else key, algorithm=alg or self.alg, headers=header)

    def sign_raw(self, header: Mapping[str, Any], payload: Any) -> str:
        """Sign exactly this header and payload (PyJWT's encode refuses some malformed headers)."""
        signing_input = f"{_b64(header)}.{_b64(payload)}"
        algorithm = jwt.get_algorithm_by_name(self.alg)
        signature = algorithm.sign(signing_input.encode(), algorithm.prepare_key(self.private_key))
        return f"{signing_input}.{_b64(signature)}"

    def headers(self, aud: str, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(aud, **kwargs)}"}


REMOVE = _REMOVE


def _b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _merge(base: dict[str, Any], changes: Mapping[str, Any] | None) -> dict[str, Any]:
    for name, value in (changes or {}).items():
        if value is _REMOVE:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def write_issuers_file(path: Path, *issuers: FakeIssuer, **entries: Mapping[str, Any]) -> Path:
    """A trusted issuers file trusting each FakeIssuer inline, plus raw entries keyed by iss."""
    document = {"issuers": {issuer.iss: issuer.entry() for issuer in issuers}}
    document["issuers"].update(entries)
    path.write_text(json.dumps(document, indent=2))
    return path


def auth_settings(directory: Path, *issuers: FakeIssuer, **overrides: Any) -> Settings:
    """Settings with authentication on, trusting ``issuers``, with state under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    issuers_file = write_issuers_file(directory / "trusted-issuers.json", *issuers)
    return Settings(trusted_issuers_file=issuers_file, state_dir=directory / "state", **overrides)


def insecure_settings(**overrides: Any) -> Settings:
    """Settings with authentication off, for tests about something else than authentication."""
    return Settings(auth_disabled=True, **overrides)
