"""Legacy keyring entries no record points to, found and removed by ``doctor``.

tokenctl 0.x kept each token's secrets in a keyring entry of its own, written before
the record; a process killed in between (``kill -9``, a power cut) left an entry, often
with a live grant at the provider, that no command can see, and an inventory restored
from an older backup did the same to every token added since. Secrets are now sealed
in the inventory, in the same transaction as their record, so no new orphans arise;
the entries of a token still waiting to be moved in count as in use. ``doctor`` lists
the old orphans where the backend can enumerate them and, when asked
(``--remove-orphans``, or yes on a terminal), revokes each grant whose definition the
entry names and removes the entry. Data key entries (``inventory-…``) are never
candidates: which homes still need them cannot be told from here.

Every tokenctl home (``--home``, ``TOKENCTL_HOME``, another profile) shares the keyring
service, so an entry no record *of this home* points to may well be another home's live
token. Only entries that say they were written for this home's inventory (the
``inventory`` fact, see :class:`tokenctl.models.TokenSecrets`) count as orphans; the
others are counted and left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tokenctl.context import AppContext
from tokenctl.definitions.registry import DefinitionSet
from tokenctl.errors import TokenctlError
from tokenctl.models import TokenSecrets
from tokenctl.secrets import (
    CLIENT_REF_PREFIX,
    KEYRING_SERVICE,
    TOKEN_REF_PREFIX,
    client_secret_ref,
    parse_entry,
)

#: The flag that removes orphans without asking (named in doctor's report, rule 8).
REMOVE_FLAG = "--remove-orphans"
#: ``doctor``'s own probe entry, written and removed by its keyring check.
PROBE_REF = "tokenctl-doctor-probe"


@dataclass(frozen=True)
class OrphanSearch:
    """What the search found: ``None`` refs when the backend cannot list its entries."""

    refs: list[str] | None
    entries: int = 0
    #: Entries no record here points to that another home, or an older tokenctl, wrote.
    not_ours: int = 0


def _referenced(ctx: AppContext, definitions: DefinitionSet | None) -> set[str]:
    """Refs the inventory, doctor and the definitions (client secrets) point to.

    A token's legacy entry is in use until its secrets are moved in; a definition's
    client secret entry until it is first used. Without definitions (they do not load)
    no client secret is known to be in use, so none of them is called an orphan.
    """
    refs = {ref for token in ctx.inventory.tokens() if (ref := token.legacy_secret_ref)}
    refs.add(PROBE_REF)
    if definitions is None:
        return refs
    for definition in definitions:
        settings = definition.oauth2
        if settings is not None and settings.client_id:
            refs.add(client_secret_ref(definition.name, settings.client_id))
    return refs


def _candidates(names: Iterable[str], referenced: set[str], definitions_known: bool) -> list[str]:
    """The names of tokenctl's entries that nothing of this home points to."""
    candidates = []
    for name in names:
        if name in referenced:
            continue
        if name.startswith(CLIENT_REF_PREFIX) and not definitions_known:
            continue  # which client secrets are in use cannot be told without definitions
        if name.startswith((TOKEN_REF_PREFIX, CLIENT_REF_PREFIX)):
            candidates.append(name)
    return sorted(candidates)


def _written_here(ctx: AppContext, ref: str) -> bool:
    """Whether the entry says it was written for this home's inventory."""
    try:
        stored = _legacy_entry(ctx, ref)
    except TokenctlError:
        return False  # not a tokenctl secret: not ours to remove
    return stored is not None and stored.inventory == ctx.paths.inventory_key


def _legacy_entry(ctx: AppContext, ref: str) -> TokenSecrets | None:
    return parse_entry(KEYRING_SERVICE, ref, ctx.keyring.get_text(ref))


def find_orphans(ctx: AppContext, definitions: DefinitionSet | None) -> OrphanSearch:
    """Entries of tokenctl's keyring service that no record or definition points to.

    The keyring is listed before the inventory is read, so the record of an ``add``
    finishing meanwhile is seen and its entry is not called an orphan.
    """
    names = ctx.keyring.entry_names()
    if names is None:
        return OrphanSearch(refs=None)
    referenced = _referenced(ctx, definitions)
    candidates = _candidates(names, referenced, definitions is not None)
    orphans = [ref for ref in candidates if _written_here(ctx, ref)]
    return OrphanSearch(refs=orphans, entries=len(names), not_ours=len(candidates) - len(orphans))


def remove_orphan(ctx: AppContext, ref: str, definitions: DefinitionSet | None) -> str:
    """Revoke the grant of one orphaned entry where its definition is known, then remove it.

    Returns what was done, for the report. The inventory is read once more first: an
    entry a record points to again (an inventory restored meanwhile) is left alone.
    """
    referenced = _referenced(ctx, definitions)
    if ref in referenced:
        return f"{ref}: in use now, left in place"
    try:
        stored = _legacy_entry(ctx, ref)
    except TokenctlError:
        return f"{ref}: not a tokenctl secret, left in place"
    if stored is None:
        return f"{ref}: already gone"
    if stored.inventory != ctx.paths.inventory_key:
        return f"{ref}: written for another tokenctl home, left in place"
    said = _revoke(ctx, stored, definitions)
    ctx.keyring.delete(ref)
    return f"{ref}: removed{said}"


def _revoke(ctx: AppContext, stored: TokenSecrets, definitions: DefinitionSet | None) -> str:
    if stored.client_secret and not (stored.refresh_token or stored.access_token):
        return " (a client secret: nothing to revoke)"
    if not (stored.refresh_token or stored.access_token):
        return " (a hand-entered token: nothing to revoke)"
    if stored.definition is None:
        return (
            " without revoking: the entry does not say which definition it belongs to "
            "(written by an older tokenctl); revoke the grant at the provider by hand"
        )
    definition = definitions.get(stored.definition) if definitions is not None else None
    if definition is None or definition.oauth2 is None:
        return (
            f" without revoking: its definition {stored.definition!r} is not in effect; "
            "revoke the grant at the provider by hand"
        )
    from tokenctl.services.revoke import revoke_grant

    confirmed, said = revoke_grant(ctx, definition, stored, stored.attributes)
    if confirmed:
        return f" and its grant revoked at {definition.title}"
    return f"; revoking its grant at {definition.title} failed ({said})"
