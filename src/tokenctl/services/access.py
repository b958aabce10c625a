"""``token`` and ``exec``: hand a currently valid access token to a script, never interactively."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from tokenctl.context import AppContext
from tokenctl.definitions import DefinitionKind
from tokenctl.errors import AuthorizationError, TokenctlError, UsageError
from tokenctl.services.access_decision import SERVED_PART, AccessDecision, decide_access
from tokenctl.services.fix_commands import enable_command, fix_command
from tokenctl.timeutil import clock_text

DEFAULT_ENV = "TOKENCTL_ACCESS_TOKEN"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def current_access_token(ctx: AppContext, ref: str) -> str:
    """A valid access token (or a static token's pass code), refreshed first when needed.

    Never interactive: when only a login would help, raise exit code 5 with the command.
    (``tokenctl token REF`` tries :mod:`tokenctl.services.quick_token` first; both follow
    :func:`~tokenctl.services.access_decision.decide_access`.)
    """
    token = ctx.inventory.resolve(ref)
    # A token not in use is refused as such, whatever state the definitions are in.
    definition = ctx.definitions.require(token.definition) if token.is_effective else None
    decision = decide_access(
        effective=token.is_effective,
        secret_set=token.secret_set_at is not None,
        invalid=token.invalid_at is not None,
        expires_at=token.expires_at,
        kind=None if definition is None else definition.kind,
        margin=None if definition is None else definition.lifetimes.refresh_margin,
        now=ctx.now(),
    )
    if decision is AccessDecision.NOT_EFFECTIVE:
        raise TokenctlError(
            f"token {token.name!r} is not effective", hint=f"run `{enable_command(token.name)}`"
        )
    assert definition is not None  # an unknown one: require() raised above
    kind = definition.kind
    fix = f"run `{fix_command(token.name, kind)}`"
    if decision is AccessDecision.NO_SECRET:
        raise AuthorizationError(f"token {token.name!r} has no secret stored", hint=fix)
    if decision is AccessDecision.INVALID:
        raise AuthorizationError(
            f"token {token.name!r} is invalid ({token.invalid_reason})", hint=fix
        )
    if decision is AccessDecision.REFRESH:
        # Only now: the refresh machinery costs ~10 ms of imports that a cached token skips.
        from tokenctl.services.budget import CallBudgetExhausted
        from tokenctl.services.refresh import refresh_token

        try:
            token = refresh_token(ctx, token, definition).token  # NeedsLogin: exit code 5
        except CallBudgetExhausted as deferred:
            # The provider's limit: an access token still valid serves (its margin was
            # only a precaution); an expired one cannot.
            if token.expires_at is None or token.expires_at <= ctx.now():
                raise
            ctx.io.warn(
                f"{deferred.message}; serving the current access token, valid until "
                f"{clock_text(token.expires_at, seconds=True)}Z"
            )
    stored = ctx.inventory.secrets(token.number)
    value = getattr(stored, SERVED_PART[kind]) if stored is not None else None
    if not value:
        what = "no secret" if kind is DefinitionKind.STATIC else "no access token"
        if token.legacy_secret_ref:  # still where tokenctl 0.x kept it, and not found there
            raise AuthorizationError(
                f"the OS keyring holds {what} for {token.name!r} (entry "
                f"tokenctl/{token.legacy_secret_ref}, where an earlier tokenctl kept it)",
                hint=f"run tokenctl in the session whose keyring has that entry, or {fix}",
            )
        raise AuthorizationError(f"the inventory holds {what} for {token.name!r}", hint=fix)
    if decision is AccessDecision.EXPIRED:  # named after a missing secret, if both
        assert token.expires_at is not None
        raise AuthorizationError(
            f"token {token.name!r} expired at {clock_text(token.expires_at)}Z", hint=fix
        )
    assert isinstance(value, str)
    return value


def run_with_token(ctx: AppContext, ref: str, command: Sequence[str], env_name: str) -> int:
    """Run ``command`` with the access token in ``env_name`` (never in argv); its exit code."""
    if not command:
        raise UsageError("give the command to run after --", hint="tokenctl exec REF -- COMMAND")
    if not ENV_NAME.match(env_name):
        raise UsageError(f"invalid environment variable name {env_name!r}")
    access_token = current_access_token(ctx, ref)
    # The child may run for hours: it should not keep a keyring connection open meanwhile.
    ctx.keyring.close()
    import subprocess

    environment = {**os.environ, env_name: access_token}
    try:
        completed = subprocess.run(list(command), env=environment, check=False)
    except FileNotFoundError:
        raise UsageError(f"command not found: {command[0]}") from None
    except PermissionError:
        raise UsageError(f"command not executable: {command[0]}") from None
    return completed.returncode
