"""``token`` and ``exec``: hand a currently valid access token to a script, never interactively."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from tokenctl.context import AppContext
from tokenctl.definitions.model import DefinitionKind
from tokenctl.errors import AuthorizationError, TokenctlError, UsageError
from tokenctl.services.quick_token import refresh_margin
from tokenctl.timeutil import clock_text

DEFAULT_ENV = "TOKENCTL_ACCESS_TOKEN"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def current_access_token(ctx: AppContext, ref: str) -> str:
    """A valid access token (or a static token's pass code), refreshed first when needed.

    Never interactive: when only a login would help, raise exit code 5 with the command.
    (``tokenctl token REF`` tries :mod:`tokenctl.services.quick_token` first.)
    """
    from tokenctl.services.oauth_options import login_command

    token = ctx.inventory.resolve(ref)
    if not token.is_effective:
        raise TokenctlError(
            f"token {token.name!r} is not effective", hint=f"run `tokenctl enable {token.name}`"
        )
    definition = ctx.definitions.require(token.definition)
    if token.secret_set_at is None:
        raise AuthorizationError(
            f"token {token.name!r} has no secret stored",
            hint=f"run `{login_command(token)}`"
            if definition.oauth2
            else f"run `tokenctl renew {token.name} --secret-stdin`",
        )
    if token.invalid_at is not None and definition.kind is DefinitionKind.OAUTH2:
        raise AuthorizationError(
            f"token {token.name!r} is invalid ({token.invalid_reason})",
            hint=f"run `{login_command(token)}`",
        )
    if definition.kind is DefinitionKind.STATIC:
        stored = ctx.secrets.get(token.secret_ref)
        if stored is None or not stored.pass_code:
            raise AuthorizationError(
                f"the OS keyring holds no secret for {token.name!r}",
                hint=f"run `tokenctl renew {token.name} --secret-stdin`",
            )
        if token.expires_at is not None and token.expires_at <= ctx.now():
            raise AuthorizationError(
                f"token {token.name!r} expired at {clock_text(token.expires_at)}Z",
                hint=f"run `tokenctl renew {token.name} --secret-stdin`",
            )
        return stored.pass_code
    # Some providers limit token calls (Exact Online: refresh only in the last ~30 s).
    margin = refresh_margin(definition.lifetimes.refresh_margin)
    due = token.expires_at is not None and token.expires_at - ctx.now() <= margin
    if due:
        # Only now: the refresh machinery costs ~10 ms of imports that a cached token skips.
        from tokenctl.services.oauth import NeedsLogin, refresh_token

        try:
            token = refresh_token(ctx, token, definition).token
        except NeedsLogin as error:
            raise AuthorizationError(error.message, hint=error.hint) from None
    stored = ctx.secrets.get(token.secret_ref)
    if stored is None or not stored.access_token:
        raise AuthorizationError(
            f"the OS keyring holds no access token for {token.name!r}",
            hint=f"run `{login_command(token)}`",
        )
    return stored.access_token


def run_with_token(ctx: AppContext, ref: str, command: Sequence[str], env_name: str) -> int:
    """Run ``command`` with the access token in ``env_name`` (never in argv); its exit code."""
    if not command:
        raise UsageError("give the command to run after --", hint="tokenctl exec REF -- COMMAND")
    if not ENV_NAME.match(env_name):
        raise UsageError(f"invalid environment variable name {env_name!r}")
    access_token = current_access_token(ctx, ref)
    # The child may run for hours: it should not keep a keyring connection open meanwhile.
    ctx.secrets.close()
    import subprocess

    environment = {**os.environ, env_name: access_token}
    try:
        completed = subprocess.run(list(command), env=environment, check=False)
    except FileNotFoundError:
        raise UsageError(f"command not found: {command[0]}") from None
    except PermissionError:
        raise UsageError(f"command not executable: {command[0]}") from None
    return completed.returncode
