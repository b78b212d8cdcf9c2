"""CDS Hooks JWTs for the load runs: one ES384 key, a trusted issuers file, many single-use tokens.

The service runs with authentication on (its default), exactly as in production: every call
carries a fresh ES384 JWT (unique ``jti``, ``aud`` = the exact URL called, ``exp - iat`` = 300 s)
that it verifies and records in its replay cache. Tokens are signed just before each run (they
live five minutes) on both cores, and fed to wrk from a file, one per request.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ISSUER = "https://ehr.bench.example"
KID = "bench-es384"
LIFETIME = 300


def create_issuer(directory: Path) -> tuple[Path, Path]:
    """Write a new P-384 key and a trusted issuers file with its public JWK inline."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    key_path = directory / "bench-es384.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": KID, "alg": "ES384", "use": "sig"})
    issuers = {"description": "benchmark client (bench/tokens.py); generated per run",
               "issuers": {ISSUER: {"jwks": {"keys": [jwk]}, "fhir_servers": ["http://127.0.0.1:*/*"]}}}
    issuers_path = directory / "trusted-issuers.json"
    issuers_path.write_text(json.dumps(issuers, indent=2))
    return key_path, issuers_path


def _load_key(key_path: Path) -> Any:
    return serialization.load_pem_private_key(key_path.read_bytes(), password=None)


def _sign_batch(args: tuple[str, str, int]) -> list[str]:
    key_path, aud, count = args
    key = _load_key(Path(key_path))
    now = int(time.time())
    headers = {"typ": "JWT", "kid": KID}
    return [
        jwt.encode({"iss": ISSUER, "aud": aud, "iat": now, "exp": now + LIFETIME, "jti": str(uuid.uuid4())},
                   key, algorithm="ES384", headers=headers)
        for _ in range(count)
    ]


def mint(key_path: Path, aud: str, count: int, processes: int = 2) -> list[str]:
    """``count`` fresh tokens for ``aud``, signed in parallel."""
    if count <= 0:
        return []
    share = -(-count // processes)
    batches = [(str(key_path), aud, min(share, count - i * share)) for i in range(processes) if count - i * share > 0]
    if len(batches) == 1:
        return _sign_batch(batches[0])
    with ProcessPoolExecutor(len(batches)) as pool:
        return [token for batch in pool.map(_sign_batch, batches) for token in batch]


def write_tokens(key_path: Path, aud: str, count: int, out: Path) -> Path:
    out.write_text("\n".join(mint(key_path, aud, count)) + "\n")
    return out


def one(key_path: Path, aud: str) -> str:
    return _sign_batch((str(key_path), aud, 1))[0]
