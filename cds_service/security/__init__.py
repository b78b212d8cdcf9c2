"""Authentication of CDS clients: the CDS Hooks 2.0 JWT (``Authorization: Bearer <jwt>``).

* ``issuers``  - the trusted issuers file (``CDS_TRUSTED_ISSUERS``): who may call, with which keys;
* ``jwks``     - each issuer's keys: inline, or fetched from a pinned URL with a cache that
                 refreshes on an unknown ``kid`` at most once per cooldown;
* ``replay``   - the ``jti`` replay cache, an SQLite file shared by the worker processes;
* ``verifier`` - every check on one token, raising ``AuthError`` with a loggable reason;
* ``flask_auth`` - the ``before_request`` hook guarding ``/cds-services`` and below;
* ``cors``     - which browser origins may call;
* ``setup``    - ``init_app(app, settings)``: all of the above wired into the app.

See docs/security.md for the model and the file format.
"""

from .errors import SecurityConfigError
from .issuers import IssuerConfigError, TrustedIssuer, TrustedIssuers, load_trusted_issuers
from .replay import ReplayCache, ReplayCacheError
from .setup import init_app
from .verifier import AuthError, JwtVerifier, VerifiedClient

__all__ = [
    "AuthError",
    "IssuerConfigError",
    "JwtVerifier",
    "ReplayCache",
    "ReplayCacheError",
    "SecurityConfigError",
    "TrustedIssuer",
    "TrustedIssuers",
    "VerifiedClient",
    "init_app",
    "load_trusted_issuers",
]
