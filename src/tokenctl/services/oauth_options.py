"""Login options, cheap to import.

Kept apart from :mod:`tokenctl.services.login` because ``add`` and ``renew`` build them
before they know whether a login is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TIMEOUT = 300.0


@dataclass(frozen=True)
class LoginOptions:
    """How to run an interactive login."""

    mode: str | None = None  # None: the definition's default
    open_browser: bool = True
    reuse_session: bool = False
    timeout: float = DEFAULT_TIMEOUT
    assume_yes: bool = False
    tenant: str | None = None  # which tenant to record when the login can use several
