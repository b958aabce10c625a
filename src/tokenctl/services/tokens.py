"""Token services: add, list, show, delete, enable/disable and renew hand-entered tokens."""

from __future__ import annotations

import re
import secrets as random_source
import shlex
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from tokenctl.context import AppContext
from tokenctl.definitions.model import Definition, DefinitionKind
from tokenctl.errors import ConflictError, NotFoundError, TokenctlError, UsageError
from tokenctl.models import (
    HistoryEvent,
    LifecycleState,
    Status,
    Token,
    TokenSecrets,
    compute_status,
)

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{3,63}$")
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
SECRET_FLAG = "--secret-stdin"  # noqa: S105 - a flag name, not a secret
HISTORY_SHOWN = 10


@dataclass(frozen=True)
class TokenView:
    """A token with what the overview derives from it: its definition and status."""

    token: Token
    definition: Definition | None
    status: Status

    @property
    def type_title(self) -> str:
        """The token's "type": its definition's title, or the bare name if it is gone."""
        return self.definition.title if self.definition else self.token.definition


@dataclass(frozen=True)
class TokenListing:
    """The result of ``list``: views in number order and the moment they were computed."""

    views: list[TokenView]
    now: datetime
    total: int


@dataclass(frozen=True)
class TokenDetail:
    """The result of ``show``: one view and its latest history."""

    view: TokenView
    history: list[HistoryEvent]
    now: datetime


@dataclass(frozen=True)
class DeleteResult:
    """What ``delete`` did, and how to get a new token for the same connection."""

    token: Token
    secret_removed: bool
    renew_command: str


@dataclass(frozen=True)
class StateChange:
    """What ``enable``/``disable`` did."""

    view: TokenView
    changed: bool


@dataclass(frozen=True)
class AddRequest:
    """Everything ``add`` was told on the command line (never a secret)."""

    name: str
    definition: str
    description: str | None = None
    identifier: str | None = None
    authentication_code: str | None = None
    expires_at: datetime | None = None
    expires_in: timedelta | None = None
    secret_from_stdin: bool = False


def view_of(ctx: AppContext, token: Token, now: datetime) -> TokenView:
    """Attach definition and computed status to a token."""
    definition = ctx.definitions.get(token.definition)
    required = definition.required_scopes if definition else ()
    status = compute_status(token, now, ctx.config.expiring_window, required)
    return TokenView(token=token, definition=definition, status=status)


def list_tokens(
    ctx: AppContext,
    *,
    statuses: Collection[Status] = (),
    definition: str | None = None,
    state: LifecycleState | None = None,
) -> TokenListing:
    """The overview: every token, filtered by status, definition and life-cycle state."""
    now = ctx.now()
    # Load definitions even for an empty inventory, so a broken file is reported at once.
    ctx.definitions  # noqa: B018
    tokens = ctx.inventory.tokens()
    views = [view_of(ctx, token, now) for token in tokens]
    selected = [
        view
        for view in views
        if (not statuses or view.status in statuses)
        and (definition is None or view.token.definition == definition)
        and (state is None or view.token.state is state)
    ]
    return TokenListing(views=selected, now=now, total=len(tokens))


def show_token(ctx: AppContext, ref: str, *, history_limit: int = HISTORY_SHOWN) -> TokenDetail:
    """One token with its definition, status and latest history events."""
    now = ctx.now()
    token = ctx.inventory.resolve(ref)
    return TokenDetail(
        view=view_of(ctx, token, now),
        history=ctx.inventory.history(token.number, history_limit),
        now=now,
    )


def _generate_code() -> str:
    raw = "".join(random_source.choice(CODE_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _expiry(now: datetime, at: datetime | None, within: timedelta | None) -> datetime | None:
    if at is not None and within is not None:
        raise UsageError("give --expires-at or --expires-in, not both")
    if within is not None:
        return now + within
    return at


def _validate_new(request: AddRequest, definition: Definition) -> None:
    if not NAME_RE.match(request.name):
        raise UsageError(
            f"invalid token name {request.name!r}",
            hint="start with a letter; use letters, digits, '.', '_' or '-' (at most 64)",
        )
    code = request.authentication_code
    if code is not None and (not CODE_RE.match(code) or code.isdigit()):
        raise UsageError(
            f"invalid authentication code {code!r}",
            hint="use 4 to 64 letters, digits, '.', '_' or '-', not only digits",
        )
    if definition.identifier_mandatory and not request.identifier:
        raise UsageError(
            f"definition {definition.name!r} requires an {definition.identifier_label}",
            hint="pass --identifier",
        )


def add_token(ctx: AppContext, request: AddRequest) -> TokenView:
    """Register a new hand-entered token: validate, read the secret, store it, record it."""
    definition = ctx.definitions.require(request.definition)
    if definition.kind is DefinitionKind.OAUTH2:
        raise UsageError(
            f"definition {definition.name!r} is an OAuth definition; its token is obtained by a "
            "browser login, which this version of tokenctl cannot do yet",
            hint="use a static definition (see `tokenctl definitions`)",
        )
    _validate_new(request, definition)
    now = ctx.now()
    expires_at = _expiry(now, request.expires_at, request.expires_in)
    try:
        ctx.inventory.resolve(request.name)
    except NotFoundError:
        pass
    else:
        raise ConflictError(
            f"a token named {request.name!r} already exists",
            hint="choose another name, or `tokenctl delete` the old token first",
        )
    # Refuse before asking for a secret we could not keep.
    ctx.secrets.ensure_available()
    pass_code = ctx.io.read_secret(
        definition.pass_code_label,
        from_stdin=request.secret_from_stdin,
        flag=SECRET_FLAG,
        required=definition.pass_code_mandatory,
    )
    secret_ref = f"token-{uuid.uuid4().hex}"
    if pass_code is not None:
        ctx.secrets.set(secret_ref, TokenSecrets(pass_code=pass_code))
    draft = Token(
        number=0,
        name=request.name,
        authentication_code=request.authentication_code or _generate_code(),
        definition=definition.name,
        secret_ref=secret_ref,
        description=request.description,
        identifier=request.identifier,
        expires_at=expires_at,
        secret_set_at=now if pass_code is not None else None,
    )
    actor = ctx.actor()
    try:
        token = ctx.inventory.add(draft, actor, now)
    except TokenctlError:
        if pass_code is not None:
            ctx.secrets.delete(secret_ref)
        raise
    if pass_code is not None:
        ctx.inventory.record_event(
            token,
            actor,
            now,
            event="secret set",
            outcome="ok",
            detail=f"{definition.pass_code_label} stored in the OS keyring",
        )
    return view_of(ctx, token, now)


def renew_command(token: Token, definition: Definition | None) -> str:
    """The exact command that retrieves a new token for the same connection."""
    words = ["tokenctl", "add", token.name, "--definition", token.definition]
    if token.description:
        words += ["--description", token.description]
    if token.identifier:
        words += ["--identifier", token.identifier]
    kind = definition.kind if definition else DefinitionKind.STATIC
    if kind is DefinitionKind.STATIC and (
        token.secret_set_at or not definition or definition.pass_code_mandatory
    ):
        words.append(SECRET_FLAG)
    return shlex.join(words)


def delete_token(ctx: AppContext, ref: str, *, assume_yes: bool) -> DeleteResult:
    """Remove a token's secret and record (history keeps the deletion)."""
    token = ctx.inventory.resolve(ref)
    if not assume_yes and not ctx.io.confirm(
        f"Delete token #{token.number} {token.name!r}?", flag="--yes"
    ):
        raise TokenctlError("nothing deleted: not confirmed")
    secret_removed = False
    if token.secret_set_at is not None:
        secret_removed = ctx.secrets.delete(token.secret_ref)
    detail = "secret removed from the OS keyring" if secret_removed else "no secret was stored"
    ctx.inventory.delete(token.number, ctx.actor(), ctx.now(), detail=detail)
    definition = ctx.definitions.get(token.definition)
    return DeleteResult(
        token=token, secret_removed=secret_removed, renew_command=renew_command(token, definition)
    )


def set_state(ctx: AppContext, ref: str, state: LifecycleState) -> StateChange:
    """Make a token effective or not effective; a no-op when it already is."""
    now = ctx.now()
    token = ctx.inventory.resolve(ref)
    updated, changed = ctx.inventory.update_if(
        token.number,
        lambda current: None if current.state is state else {"state": state},
        ctx.actor(),
        now,
        event="state changed",
        detail=f"now {state.value}",
    )
    return StateChange(view=view_of(ctx, updated, now), changed=changed)


def renew_static(
    ctx: AppContext,
    ref: str,
    *,
    secret_from_stdin: bool,
    expires_at: datetime | None = None,
    expires_in: timedelta | None = None,
) -> TokenView:
    """Replace a hand-entered token's pass code (and expiry); it becomes valid again."""
    token = ctx.inventory.resolve(ref)
    definition = ctx.definitions.require(token.definition)
    if definition.kind is not DefinitionKind.STATIC:
        raise UsageError(
            f"token {token.name!r} is an OAuth token; this version of tokenctl cannot log in yet"
        )
    now = ctx.now()
    new_expiry = _expiry(now, expires_at, expires_in)
    ctx.secrets.ensure_available()
    pass_code = ctx.io.read_secret(
        definition.pass_code_label, from_stdin=secret_from_stdin, flag=SECRET_FLAG, required=True
    )
    assert pass_code is not None
    ctx.secrets.set(token.secret_ref, TokenSecrets(pass_code=pass_code))
    # The old expiry belonged to the old pass code: keep only what was said about the new one.
    changes = {
        "secret_set_at": now,
        "invalid_at": None,
        "invalid_reason": None,
        "expires_at": new_expiry,
    }
    updated = ctx.inventory.update(
        token.number,
        changes,
        ctx.actor(),
        now,
        event="renewed",
        detail=f"new {definition.pass_code_label} stored in the OS keyring",
    )
    return view_of(ctx, updated, now)
