"""``tokenctl store copy``: every token of one store into the other, numbers kept.

The copy compares first and writes after: each token of the source is ``add`` (its
number is free in the destination), ``same`` (the destination holds it as it is:
record, secrets and history), ``differs`` (the destination holds another version of
this token -- the same number and authentication code -- or a token of that number was
deleted there) or ``clash`` (its number, name or authentication code is another
token's in the destination). A ``differs`` is replaced only with ``--overwrite``; a
``clash`` never is (the other token would be lost). When
anything is refused nothing at all is written, so a copy never stops halfway on a
conflict. Written through :meth:`~tokenctl.inventory.Inventory.import_token`, one token
at a time: a copy killed midway leaves the tokens copied so far, and the next run
finds them ``same`` and copies the rest.

The client secrets of the definitions this profile knows (their client ids) are copied
alike. Copying never changes which store config.toml chooses (``store use``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tokenctl.config import StoreKind
from tokenctl.errors import ConfigError, ConflictError, NotFoundError, UsageError

if TYPE_CHECKING:
    from tokenctl.context import AppContext
    from tokenctl.inventory import Inventory
    from tokenctl.models import HistoryEvent, Token, TokenSecrets

#: Fields of a record that are compared (the number is the key; the 0.x keyring entry's
#: name is this store's own business).
#: Not compared: the number is the key; the local store keeps neither a legacy entry's
#: name for a team store's token nor the store identity of changes (team store only).
_COMPARED = ("number", "legacy_secret_ref", "created_identity", "updated_identity")
#: Conflicts a refusal names one by one (``--dry-run`` lists them all).
_NAMED_AT_MOST = 10
#: The parts of a token's secrets a store keeps.
_SECRET_PARTS = ("access_token", "refresh_token", "id_token", "pass_code", "token_type")


class CopyAction(StrEnum):
    """What the copy does (or would do) with one token or client secret."""

    ADD = "add"  # not in the destination: copied
    REPLACE = "replace"  # differs, and --overwrite replaces it
    SAME = "same"  # the destination holds it as it is: skipped
    DIFFERS = "differs"  # the destination holds another version: refused
    CLASH = "clash"  # its name or code is another token's in the destination: refused

    @property
    def writes(self) -> bool:
        """Whether the copy writes it."""
        return self in (CopyAction.ADD, CopyAction.REPLACE)

    @property
    def refused(self) -> bool:
        """Whether it stops the copy (nothing is written)."""
        return self in (CopyAction.DIFFERS, CopyAction.CLASH)


@dataclass(frozen=True)
class TokenCopy:
    """One token of the source and what the copy does with it."""

    number: int
    name: str
    action: CopyAction
    #: What differs: names of record fields, ``secrets``, ``history``; ``record`` when
    #: the destination has none (a token of that number was deleted there).
    differences: tuple[str, ...] = ()
    #: For a ``clash``, why; for ``differs`` and ``replace``, what differs (in words).
    detail: str | None = None


@dataclass(frozen=True)
class ClientCopy:
    """One client secret of the source and what the copy does with it."""

    definition: str
    client_id: str
    action: CopyAction


@dataclass(frozen=True)
class CopyReport:
    """What ``store copy`` did (or, with ``--dry-run``, would do)."""

    source: StoreKind
    destination: StoreKind
    #: Where each is, as ``store status`` names it.
    source_where: str
    destination_where: str
    #: The store config.toml chooses (copying never changes it).
    in_use: StoreKind
    dry_run: bool
    overwrite: bool
    tokens: tuple[TokenCopy, ...]
    clients: tuple[ClientCopy, ...]
    #: Whether the copy was made (``False`` with ``--dry-run``).
    written: bool

    @property
    def items(self) -> list[TokenCopy | ClientCopy]:
        """Every token, then every client secret."""
        return [*self.tokens, *self.clients]

    @property
    def refused(self) -> list[TokenCopy | ClientCopy]:
        """What stops the copy."""
        return [item for item in self.items if item.action.refused]

    @property
    def changes(self) -> int:
        """How many tokens and client secrets are (or would be) written."""
        return sum(item.action.writes for item in self.items)


def parse_copy_kind(text: str, option: str) -> StoreKind:
    """``local`` or ``openbao`` for ``option`` (``--from``, ``--to``); else a usage error."""
    from tokenctl.services.store import parse_choice

    return parse_choice(
        StoreKind, text, what="store", hint=f"use {option} local or {option} openbao"
    )


def copy_store(
    ctx: AppContext,
    source: StoreKind,
    destination: StoreKind,
    *,
    dry_run: bool = False,
    overwrite: bool = False,
) -> CopyReport:
    """Copy every token and client secret of ``source`` into ``destination``.

    Compares everything first; refuses (``ConflictError``, nothing written) when a
    token differs without ``overwrite``, or clashes. ``dry_run`` writes nothing and
    reports what would be done, refusals included.
    """
    if source is destination:
        raise UsageError(
            f"--from and --to both name the {source.value} store: nothing to copy",
            hint="copy between the two: `tokenctl store copy --from local --to openbao`, "
            "or `--from openbao --to local`",
        )
    _require_team_store(ctx)
    if source is StoreKind.LOCAL and not ctx.paths.inventory_file.exists():
        raise NotFoundError(  # opening it would make an empty one
            f"the local store {ctx.paths.inventory_file} does not exist: nothing to copy",
            hint="check --home or TOKENCTL_HOME: the local store is that home's inventory",
        )
    from_store = ctx.open_store(source)
    # A dry run into a local store that does not exist yet compares with nothing rather
    # than make the file.
    absent = destination is StoreKind.LOCAL and not ctx.paths.inventory_file.exists()
    to_store = None if dry_run and absent else ctx.open_store(destination)
    tokens = _plan_tokens(from_store, to_store, overwrite=overwrite)
    clients = _plan_clients(ctx, from_store, to_store, overwrite=overwrite)
    report = CopyReport(
        source=source,
        destination=destination,
        source_where=_where(from_store),
        destination_where=(str(ctx.paths.inventory_file) if to_store is None else _where(to_store)),
        in_use=ctx.config.store.kind,
        dry_run=dry_run,
        overwrite=overwrite,
        tokens=tuple(plan.copy for plan in tokens),
        clients=tuple(plan.copy for plan in clients),
        written=False,
    )
    if dry_run:
        return report
    if report.refused:
        raise _refusal(report)
    assert to_store is not None  # opened unless a dry run
    for plan in tokens:
        if plan.copy.action.writes:
            to_store.import_token(
                plan.token,
                plan.secrets,
                plan.history,
                replace=plan.copy.action is CopyAction.REPLACE or plan.resume,
            )
    for client in clients:
        if client.copy.action.writes:
            to_store.set_client_secret(client.copy.definition, client.copy.client_id, client.secret)
    return replace(report, written=True)


def _require_team_store(ctx: AppContext) -> None:
    """Refuse before anything is opened when no team store is named anywhere."""
    from tokenctl.store.connection import configured_address

    if configured_address(ctx.config.store, ctx.environ) is None:
        raise ConfigError(
            f"no team store is configured: [store] in {ctx.paths.config_file} names no "
            "address, and BAO_ADDR and VAULT_ADDR are not set",
            hint="set the team store's address, mount and path in [store] (`tokenctl store "
            "use openbao --address URL --mount MOUNT --path PATH`; `store use local` goes "
            "back without forgetting them), or BAO_ADDR",
        )


def _where(inventory: Inventory) -> str:
    """A store as messages name it: the local file, or the team store's address and path."""
    facts = inventory.store_facts()
    if facts.get("kind") == StoreKind.OPENBAO.value:
        return f"{facts.get('address')} {facts.get('mount')}/{facts.get('path')}"
    return str(facts.get("path"))


@dataclass(frozen=True)
class _TokenPlan:
    copy: TokenCopy
    token: Token
    secrets: TokenSecrets | None
    history: Sequence[HistoryEvent]
    #: The destination holds what an import cut short left (its history, no record).
    resume: bool = False


@dataclass(frozen=True)
class _ClientPlan:
    copy: ClientCopy
    secret: str


def _plan_tokens(
    source: Inventory, destination: Inventory | None, *, overwrite: bool
) -> list[_TokenPlan]:
    """Each token of ``source`` compared with what ``destination`` (``None``: none) holds."""
    theirs = {} if destination is None else {t.number: t for t in destination.tokens()}
    names = {token.name: token.number for token in theirs.values()}
    codes = {token.authentication_code: token.number for token in theirs.values()}
    plans: list[_TokenPlan] = []
    for token in source.tokens():
        secrets = _kept_secrets(source.secrets(token.number))
        history = source.history(token.number)
        number = token.number
        other = theirs.get(number)
        clash = _clash(token, names, codes)
        if (
            clash is None
            and other is not None
            and other.authentication_code != (token.authentication_code)
        ):
            # Another token, not another version of this one: the code is its identity.
            clash = f"its number #{number} is another token there, {other.name!r}"
        if clash is not None:
            copy = TokenCopy(number, token.name, CopyAction.CLASH, detail=clash)
            plans.append(_TokenPlan(copy, token, secrets, history))
            continue
        their_history = [] if destination is None else destination.history(number)
        resume = False
        if other is None:
            if not their_history:
                differences: tuple[str, ...] = ()
            elif their_history[0].event == "deleted":
                differences = ("record",)
            else:
                differences, resume = (), True  # a copy cut short left its history
        else:
            differences = _record_differences(token, other)
            assert destination is not None  # it holds `other`
            if secrets != _kept_secrets(destination.secrets(number)):
                differences += ("secrets",)
            if _events(history) != _events(their_history):
                differences += ("history",)
        if other is None and not differences:
            action = CopyAction.ADD
        elif not differences:
            action = CopyAction.SAME
        else:
            action = CopyAction.REPLACE if overwrite else CopyAction.DIFFERS
        detail = None
        if differences:
            detail = (
                "deleted in the destination"
                if other is None
                else f"differs in {', '.join(differences)}"
            )
        copy = TokenCopy(number, token.name, action, differences, detail)
        plans.append(_TokenPlan(copy, token, secrets, history, resume))
    return plans


def _clash(token: Token, names: dict[str, int], codes: dict[str, int]) -> str | None:
    """Why ``token``'s name or code cannot be had in the destination, or ``None``.

    Names and codes share one look-up space, so each is compared with both.
    """
    for what, value in (("name", token.name), ("authentication code", token.authentication_code)):
        for their_what, taken in (("name", names), ("authentication code", codes)):
            holder = taken.get(value)
            if holder is not None and holder != token.number:
                return f"its {what} {value!r} is the {their_what} of token #{holder} there"
    return None


def _record_differences(ours: Token, theirs: Token) -> tuple[str, ...]:
    """The record fields in which two versions of a token differ."""
    return tuple(
        item.name
        for item in fields(ours)
        if item.name not in _COMPARED and getattr(ours, item.name) != getattr(theirs, item.name)
    )


def _kept_secrets(secrets: TokenSecrets | None) -> TokenSecrets | None:
    """The parts of ``secrets`` a store keeps; ``None`` when there are none."""
    if secrets is None:
        return None
    from tokenctl.models import TokenSecrets

    values = {name: getattr(secrets, name) or None for name in _SECRET_PARTS}
    return TokenSecrets(**values) if any(values.values()) else None


def _events(history: Sequence[HistoryEvent]) -> list[tuple[Any, ...]]:
    """A history as compared: every event but its id (each store numbers its own)."""
    return [(e.token_name, e.at, e.event, e.user, e.unit, e.outcome, e.detail) for e in history]


def _plan_clients(
    ctx: AppContext, source: Inventory, destination: Inventory | None, *, overwrite: bool
) -> list[_ClientPlan]:
    """The client secrets of this profile's definitions, compared."""
    plans: list[_ClientPlan] = []
    seen: set[tuple[str, str]] = set()
    for definition in ctx.definitions:
        settings = definition.oauth2
        if settings is None or not settings.client_id:
            continue
        key = (definition.name, settings.client_id)
        if key in seen:
            continue
        seen.add(key)
        secret = source.client_secret(*key)
        if secret is None:
            continue
        theirs = None if destination is None else destination.client_secret(*key)
        if theirs is None:
            action = CopyAction.ADD
        elif theirs == secret:
            action = CopyAction.SAME
        else:
            action = CopyAction.REPLACE if overwrite else CopyAction.DIFFERS
        plans.append(_ClientPlan(ClientCopy(*key, action), secret))
    return plans


def _refusal(report: CopyReport) -> ConflictError:
    """Why nothing was copied, naming every token and client secret that stops it."""
    named = []
    for item in report.refused:
        if isinstance(item, TokenCopy) and item.action is CopyAction.CLASH:
            named.append(f"#{item.number} {item.name!r} (clash: {item.detail})")
        elif isinstance(item, TokenCopy):
            named.append(f"#{item.number} {item.name!r} ({item.detail})")
        else:
            named.append(f"the client secret of {item.definition}/{item.client_id} (differs)")
    clashes = any(item.action is CopyAction.CLASH for item in report.refused)
    hint = (
        "`--dry-run` shows every token; `--overwrite` replaces what differs in the "
        "destination with the source's"
    )
    if clashes:
        hint += "; a clash is never overwritten: rename or delete one of the two tokens"
    shown = named[:_NAMED_AT_MOST]
    if len(named) > len(shown):
        shown.append(f"and {len(named) - len(shown)} more")
    return ConflictError(
        f"nothing copied from the {report.source.value} store to the "
        f"{report.destination.value} store: {len(named)} conflict(s): " + "; ".join(shown),
        hint=hint,
    )
