"""Start-up errors of the security configuration (the CLI prints them and exits)."""

from __future__ import annotations


class SecurityConfigError(ValueError):
    """Authentication or CORS cannot be set up as configured; the message says what to change."""
