"""Revoking a grant at its provider, for a token's secrets (``delete``, orphaned entries)."""

from __future__ import annotations

from collections.abc import Mapping

from tokenctl.context import AppContext
from tokenctl.definitions.model import Definition
from tokenctl.errors import TokenctlError
from tokenctl.models import TokenSecrets


def revoke_grant(
    ctx: AppContext,
    definition: Definition,
    secrets: TokenSecrets,
    attributes: Mapping[str, str] | None,
) -> tuple[bool, str]:
    """Revoke the grant (refresh token first); whether the provider confirmed, and what it said.

    Never raises for the provider or the definition: a placeholder without a value, an
    unconfigured client or an unreachable provider only make the revocation fail.
    """
    try:
        client = ctx.provider_client(definition, attributes or {})
    except TokenctlError as error:
        return False, error.message
    return client.revoke_grant(secrets)
