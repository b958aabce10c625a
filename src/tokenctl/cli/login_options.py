"""The login options shared by ``add`` and ``renew``."""

from __future__ import annotations

import typer

from tokenctl.errors import UsageError
from tokenctl.services.oauth_options import DEFAULT_TIMEOUT, LoginOptions

NO_BROWSER = typer.Option(
    False, "--no-browser", help="Only print the login URL (for SSH: forward the port)."
)
DEVICE = typer.Option(False, "--device", help="Log in with a code on another device (RFC 8628).")
PASTE = typer.Option(
    False, "--paste", help="Redirect to the registered HTTPS URI and paste the URL back."
)
RELAY = typer.Option(
    False, "--relay", help="Redirect through the organisation's hosted relay page."
)
TENANT = typer.Option(
    None,
    "--tenant",
    help="The tenant (organisation) to record when the login has several.",
    metavar="ID",
)
REUSE_SESSION = typer.Option(
    False, "--reuse-session", help="Do not ask the provider for a fresh login."
)
TIMEOUT = typer.Option(
    DEFAULT_TIMEOUT,
    "--timeout",
    help=f"Seconds to wait for the browser (default {DEFAULT_TIMEOUT:g}).",
    metavar="SECONDS",
    show_default=False,
)
YES = typer.Option(False, "--yes", "-y", help="Do not ask before opening the login.")


def login_options(
    *,
    no_browser: bool,
    device: bool,
    paste: bool,
    reuse_session: bool,
    timeout: float,
    yes: bool,
    relay: bool = False,
    tenant: str | None = None,
) -> LoginOptions:
    """Turn the flags into :class:`LoginOptions`; at most one mode flag."""
    if device + paste + relay > 1:
        raise UsageError("give at most one of --device, --paste and --relay")
    if timeout <= 0:
        raise UsageError("--timeout must be positive")
    mode = "device" if device else "paste" if paste else "relay" if relay else None
    return LoginOptions(
        mode=mode,
        open_browser=not no_browser,
        reuse_session=reuse_session,
        timeout=timeout,
        assume_yes=yes,
        tenant=tenant,
    )
