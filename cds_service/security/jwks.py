"""Public keys of a trusted issuer: a JWK Set given inline, or fetched from a pinned URL.

A key is looked up by the token's ``kid`` *and* ``alg``: the ``PyJWK`` handed to PyJWT is
bound to exactly one algorithm that fits the key (the JWK's own ``alg`` when it has one),
so a token cannot pick a different algorithm for the same key (PyJWT given a raw key
accepted an RS512 token against an RS384 JWK; given the PyJWK it refuses).

A fetched set is cached for ``cache_seconds``; a ``kid`` not in the cache triggers a refresh,
but at most one fetch per ``cooldown`` seconds per issuer and process, so a flood of tokens
with made-up ``kid`` values cannot turn into a flood of fetches. The URL comes only from the
trusted issuers file, never from a token (``jku`` is compared, not followed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import requests
from jwt import PyJWK
from jwt.exceptions import PyJWTError

log = logging.getLogger(__name__)

_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
# Private (or symmetric) key members: a JWK carrying one must never be configured or used.
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
MAX_JWKS_BYTES = 256 * 1024
MAX_KEYS = 100


class JwkError(ValueError):
    """A JWK or JWK Set that cannot be used; the message names the key, never key material."""


class JwksFetchError(Exception):
    """Fetching a JWK Set failed; the message is safe to log."""


def key_algorithms(jwk: Mapping[str, Any]) -> frozenset[str]:
    """The JWS algorithms a public JWK may verify (only its own ``alg`` if it declares one)."""
    kty = jwk.get("kty")
    if kty == "RSA":
        fitting = _RSA_ALGORITHMS
    elif kty == "EC" and jwk.get("crv") in _EC_ALGORITHMS:
        fitting = frozenset({_EC_ALGORITHMS[jwk["crv"]]})
    else:
        return frozenset()
    declared = jwk.get("alg")
    if declared is None:
        return fitting
    return frozenset({declared}) & fitting


def parse_jwk_set(data: Any, *, strict: bool) -> dict[str, dict[str, Any]]:
    """Public signature keys by ``kid``.

    ``strict`` (configured inline sets) raises JwkError on the first unusable key; otherwise
    (fetched sets, which may also publish encryption keys) unusable keys are skipped and logged.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        raise JwkError('must be a JWK Set: a JSON object with a "keys" array')
    keys: dict[str, dict[str, Any]] = {}
    for index, jwk in enumerate(data["keys"][:MAX_KEYS]):
        try:
            kid = _check_jwk(jwk, index)
            if kid in keys:
                raise JwkError(f'keys[{index}]: kid {kid!r} appears twice (a kid must be unique within its JWK Set)')
        except JwkError as exc:
            if strict:
                raise
            log.warning("JWKS: skipping a key: %s", exc)
            continue
        keys[kid] = dict(jwk)
    if len(data["keys"]) > MAX_KEYS:
        if strict:
            raise JwkError(f"has more than {MAX_KEYS} keys")
        log.warning("JWKS: only the first %d keys are used", MAX_KEYS)
    if strict and not keys:
        raise JwkError('"keys" is empty: at least one public signature key is needed')
    return keys


def _check_jwk(jwk: Any, index: int) -> str:
    where = f"keys[{index}]"
    if not isinstance(jwk, Mapping):
        raise JwkError(f"{where}: must be a JSON object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        raise JwkError(f'{where}: needs a "kid" (CDS Hooks clients put it in every token header)')
    where = f"{where} (kid {kid!r})"
    kty = jwk.get("kty")
    if kty == "oct":
        raise JwkError(f"{where}: symmetric (oct) keys are not allowed: CDS Hooks JWTs are signed with a private key")
    private = [member for member in _PRIVATE_MEMBERS if member in jwk]
    if private:
        raise JwkError(f"{where}: contains private key material ({', '.join(private)}); configure the public key only")
    if kty not in ("RSA", "EC"):
        raise JwkError(f'{where}: kty must be "RSA" or "EC", not {kty!r}')
    if jwk.get("use", "sig") != "sig":
        raise JwkError(f'{where}: "use" is {jwk.get("use")!r}; only signature keys ("sig") verify JWTs')
    algorithms = key_algorithms(jwk)
    if not algorithms:
        raise JwkError(f"{where}: its alg {jwk.get('alg')!r} does not fit a {kty} key{' on ' + str(jwk.get('crv')) if kty == 'EC' else ''}")
    try:
        PyJWK(dict(jwk), algorithm=sorted(algorithms)[0])
    except (PyJWTError, ValueError, TypeError) as exc:
        raise JwkError(f"{where}: not a valid public key ({type(exc).__name__})") from None
    return kid


class KeySet:
    """An immutable set of public JWKs with PyJWK objects built on first use per (kid, alg)."""

    def __init__(self, keys: Mapping[str, Mapping[str, Any]]) -> None:
        self._keys = dict(keys)
        self._built: dict[tuple[str, str], PyJWK] = {}

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def jwks(self) -> dict[str, Any]:
        return {"keys": list(self._keys.values())}

    def get(self, kid: str, alg: str) -> PyJWK | None:
        """The key for this kid bound to ``alg``; None if the kid is unknown or ``alg`` does not fit it."""
        jwk = self._keys.get(kid)
        if jwk is None or alg not in key_algorithms(jwk):
            return None
        built = self._built.get((kid, alg))
        if built is None:
            try:
                built = PyJWK(dict(jwk), algorithm=alg)
            except (PyJWTError, ValueError, TypeError):
                return None
            self._built[(kid, alg)] = built
        return built


class StaticJwks:
    """Keys configured inline: no network, ever."""

    def __init__(self, keys: KeySet) -> None:
        self.keys = keys

    def lookup(self, kid: str) -> KeySet:
        return self.keys


class RemoteJwks:
    """Keys fetched from a pinned URL, cached, refreshed on an unknown kid at most once per cooldown."""

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 3600.0,
        cooldown: float = 30.0,
        fetch: Callable[[str], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._cache_seconds = cache_seconds
        self._cooldown = cooldown
        self._fetch = fetch or fetch_jwks
        self._clock = clock
        self._keys = KeySet({})
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._lock = threading.Lock()

    def lookup(self, kid: str) -> KeySet:
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at >= self._cache_seconds
        if stale or kid not in self._keys:
            self._refresh(now)
        return self._keys

    def _refresh(self, now: float) -> None:
        with self._lock:
            if self._last_attempt is not None and now - self._last_attempt < self._cooldown:
                return  # fetched (or failed) moments ago: answer from what we have
            self._last_attempt = now
            try:
                keys = KeySet(parse_jwk_set(self._fetch(self.url), strict=False))
            except (JwksFetchError, JwkError) as exc:
                log.error("JWKS %s could not be used: %s; keeping %d cached key(s)", self.url, exc, len(self._keys))
                return
            self._keys = keys
            self._fetched_at = now
            log.info("JWKS %s fetched: %d key(s)", self.url, len(keys))


def fetch_jwks(url: str, *, connect_timeout: float = 2.0, read_timeout: float = 3.0, total_timeout: float = 5.0) -> Any:
    """GET a JWK Set: no redirects (the pinned URL is the only one trusted), bounded in bytes and time."""
    deadline = time.monotonic() + total_timeout
    error: JwksFetchError | None = None
    try:
        response = requests.get(
            url,
            headers={"Accept": "application/jwk-set+json, application/json"},
            timeout=(connect_timeout, read_timeout),
            allow_redirects=False,
            stream=True,
        )
    except requests.Timeout:
        error = JwksFetchError("timed out")
    except (requests.RequestException, ValueError) as exc:
        error = JwksFetchError(f"connection failed ({type(exc).__name__})")
    if error is not None:
        raise error
    with response:
        if response.status_code != 200:
            raise JwksFetchError(f"HTTP {response.status_code} (redirects are not followed)")
        body = bytearray()
        try:
            for chunk in response.iter_content(chunk_size=16 * 1024):
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksFetchError(f"larger than {MAX_JWKS_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise JwksFetchError(f"took longer than {total_timeout} s")
        except (requests.RequestException, ValueError) as exc:
            error = JwksFetchError(f"reading failed ({type(exc).__name__})")
        if error is not None:
            raise error
    try:
        return orjson.loads(bytes(body))
    except orjson.JSONDecodeError:
        error = JwksFetchError("not valid JSON")
    raise error
