"""Token services: add, list, show, delete, enable/disable and renew hand-entered tokens."""

from __future__ import annotations

import re
import secrets as random_source
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from tokenctl.context import AppContext
from tokenctl.definitions import DefinitionKind
from tokenctl.definitions.model import Definition
from tokenctl.errors import (
    AuthorizationError,
    ConflictError,
    DataKeyMissingError,
    NotFoundError,
    SecretUnreadableError,
    TokenctlError,
    UsageError,
)
from tokenctl.models import (
    HistoryEvent,
    LifecycleState,
    Status,
    Token,
    TokenChanges,
    TokenSecrets,
    compute_status,
    connection_expires_at,
)
from tokenctl.secrets import data_key_ref
from tokenctl.services.fix_commands import SECRET_FLAG, add_command, fix_command
from tokenctl.services.oauth_options import LoginOptions
from tokenctl.timeutil import add_checked

if TYPE_CHECKING:
    from tokenctl.services.budget import BudgetState
    from tokenctl.services.login import LoginResult
    from tokenctl.services.probe import ProbeOutcome

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{3,63}$")
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
HISTORY_SHOWN = 10


@dataclass(frozen=True)
class TokenView:
    """A token with what the overview derives from it: its definition and status."""

    token: Token
    definition: Definition | None
    status: Status

    @property
    def connection_expires_at(self) -> datetime | None:
        """When the connection dies (the refresh horizon for refreshable tokens)."""
        idle = self.definition.lifetimes.refresh_token_idle if self.definition else None
        return connection_expires_at(self.token, idle)

    @property
    def kind(self) -> DefinitionKind:
        """Hand-entered (static) or OAuth: the definition's kind.

        When the definition is gone, what the record shows: only an OAuth login leaves an
        account, scopes, a refresh token, a renewal or a probe.
        """
        if self.definition is not None:
            return self.definition.kind
        token = self.token
        oauth = (
            token.has_refresh_token
            or token.account is not None
            or token.granted_scopes is not None
            or token.refreshed_at is not None
            or token.probed_at is not None
        )
        return DefinitionKind.OAUTH2 if oauth else DefinitionKind.STATIC

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
    probe: ProbeOutcome | None = None
    #: The keyring entry of the data key that seals the token's secrets.
    key_entry: str = ""
    #: What is left of its definition's token-call limits (``None``: it has none).
    budget: BudgetState | None = None


@dataclass(frozen=True)
class DeleteResult:
    """What ``delete`` did, and how to get a new token for the same connection."""

    token: Token
    secret_removed: bool
    retrieval: AddRequest  # the `add` that retrieves a new token for the same connection
    retrievable: bool  # False when the definition is gone: the `add` would be refused
    revoked: bool = False
    revocation: str | None = None  # what the provider said, None when not attempted

    @property
    def renew_command(self) -> str:
        """The command line of :attr:`retrieval`, to print."""
        return add_command(self.retrieval)


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
    login: LoginOptions | None = field(default_factory=LoginOptions)  # None: --no-login
    params: dict[str, str] = field(default_factory=dict)  # values for the placeholders


class RenewMethod(StrEnum):
    """How ``renew`` renewed a token (``renewed_by`` in its JSON)."""

    REFRESH = "refresh"
    LOGIN = "login"
    PASS_CODE = "pass code"  # noqa: S105 - a way of renewing, not a secret
    CONCURRENT = "concurrent"  # another process renewed it meanwhile; that result is used
    #: Not renewed: the access token is valid and the definition's provider refuses a
    #: refresh before its ``refresh_margin`` (Exact Online: the last 30 s).
    NOT_DUE = "not due"


@dataclass(frozen=True)
class RenewResult:
    """What ``renew`` did, and how."""

    view: TokenView
    method: RenewMethod
    missing_scopes: list[str] = field(default_factory=list)
    #: With ``NOT_DUE``: when the provider accepts a refresh (the access token's expiry
    #: minus the definition's refresh margin).
    refresh_possible_at: datetime | None = None


def view_of(ctx: AppContext, token: Token, now: datetime) -> TokenView:
    """Attach definition and computed status to a token."""
    definition = ctx.definitions.get(token.definition)
    required = definition.required_scopes if definition else ()
    idle = definition.lifetimes.refresh_token_idle if definition else None
    status = compute_status(token, now, ctx.config.expiring_window, required, idle)
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
    # Load settings and definitions even for an empty inventory, so a broken file is
    # reported at once rather than when the first token appears.
    ctx.config  # noqa: B018
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


def show_token(
    ctx: AppContext, ref: str, *, probe: bool = False, history_limit: int = HISTORY_SHOWN
) -> TokenDetail:
    """One token with its definition, status and latest history; ``probe`` asks the provider."""
    token = ctx.inventory.resolve(ref)
    outcome = None
    if probe:
        from tokenctl.services.probe import probe_token

        outcome = probe_token(ctx, token, ctx.definitions.require(token.definition))
        token = outcome.token
    now = ctx.now()
    view = view_of(ctx, token, now)
    budget = None
    if view.definition is not None and view.definition.limits.any:
        from tokenctl.services.budget import budget_state

        try:
            budget = budget_state(ctx, view.definition, token.account, token.number)
        except TokenctlError as error:  # a store that may not tell (a read-only policy)
            ctx.io.warn(f"the token calls counted are unknown: {error.message}")
    return TokenDetail(
        view=view,
        history=ctx.inventory.history(token.number, history_limit),
        now=now,
        probe=outcome,
        key_entry=data_key_ref(ctx.inventory.inventory_id),
        budget=budget,
    )


def _generate_code() -> str:
    raw = "".join(random_source.choice(CODE_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _expiry(now: datetime, at: datetime | None, within: timedelta | None) -> datetime | None:
    if at is not None and within is not None:
        raise UsageError("give --expires-at or --expires-in, not both")
    if within is not None:
        expiry = add_checked(now, within)
        if expiry is None:
            raise UsageError(
                "--expires-in reaches past 9999-12-31", hint="give a shorter --expires-in"
            )
        return expiry
    return at


def _login_flags_given(options: LoginOptions | None) -> bool:
    defaults = LoginOptions()
    if options is None:
        return True  # --no-login
    return (
        options.mode is not None
        or options.tenant is not None
        or options.open_browser != defaults.open_browser
        or options.reuse_session != defaults.reuse_session
        or options.timeout != defaults.timeout
    )


def _refuse_flags_of_the_other_kind(
    definition: Definition,
    *,
    login: LoginOptions | None,
    force_login: bool = False,
    secret_from_stdin: bool,
    expiry_given: bool,
) -> None:
    """A flag that does not apply to this kind of token is a mistake, not something to skip."""
    if definition.kind is DefinitionKind.STATIC:
        if force_login or _login_flags_given(login):
            raise UsageError(
                f"definition {definition.name!r} is static: its token is entered by hand, "
                "so the login flags do not apply",
                hint="give the pass code with --secret-stdin or at the prompt",
            )
    elif secret_from_stdin or expiry_given:
        raise UsageError(
            f"definition {definition.name!r} is an OAuth definition: --secret-stdin, "
            "--expires-at and --expires-in apply only to hand-entered tokens",
            hint="the provider sets the expiry; leave those flags out",
        )


def _blank_to_none(value: str | None) -> str | None:
    return value if value and value.strip() else None


def _validate_new(request: AddRequest, definition: Definition) -> None:
    unknown = sorted(set(request.params) - set(definition.placeholders))
    if unknown:
        declared = ", ".join(definition.placeholders) or "none"
        raise UsageError(
            f"definition {definition.name!r} has no placeholder {unknown[0]!r}",
            hint=f"its placeholders: {declared} (see `tokenctl definitions show "
            f"{definition.name}`)",
        )
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
            f"definition {definition.name!r} requires the {definition.identifier_label}",
            hint="pass --identifier",
        )


def add_token(ctx: AppContext, request: AddRequest) -> TokenView:
    """Register a new hand-entered token: validate, read the secret, store it, record it."""
    definition = ctx.definitions.require(request.definition)
    request = replace(
        request,
        description=_blank_to_none(request.description),
        identifier=_blank_to_none(request.identifier),
    )
    _validate_new(request, definition)
    _refuse_flags_of_the_other_kind(
        definition,
        login=request.login,
        secret_from_stdin=request.secret_from_stdin,
        expiry_given=request.expires_at is not None or request.expires_in is not None,
    )
    now = ctx.now()
    expires_at = _expiry(now, request.expires_at, request.expires_in)
    actor = ctx.actor()  # reads config.toml: fail on a broken one before any side effect
    try:
        existing = ctx.inventory.resolve(request.name)
    except NotFoundError:
        pass
    else:
        if existing.name == request.name:
            raise ConflictError(
                f"a token named {request.name!r} already exists",
                hint="choose another name, or `tokenctl delete` the old token first",
            )
        if existing.authentication_code == request.name:
            raise ConflictError(
                f"name {request.name!r} is the authentication code of token {existing.name!r}",
                hint="choose another name",
            )
    if definition.kind is DefinitionKind.OAUTH2:
        return _add_oauth(ctx, request, definition)
    # Refuse before asking for a secret we could not keep.
    ctx.inventory.ensure_secrets_writable()
    pass_code = ctx.io.read_secret(
        definition.pass_code_label,
        from_stdin=request.secret_from_stdin,
        flag=SECRET_FLAG,
        required=definition.pass_code_mandatory,
    )
    draft = Token(
        number=0,
        name=request.name,
        authentication_code=request.authentication_code or _generate_code(),
        definition=definition.name,
        description=request.description,
        identifier=request.identifier,
        expires_at=expires_at,
        secret_set_at=now if pass_code is not None else None,
    )
    secrets = None if pass_code is None else TokenSecrets(pass_code=pass_code)
    token = ctx.inventory.add(draft, actor, now, secrets=secrets)
    if pass_code is not None:
        ctx.inventory.record_event(
            token,
            actor,
            now,
            event="secret set",
            outcome="ok",
            detail=f"{definition.pass_code_label} stored, encrypted",
        )
    return view_of(ctx, token, now)


def retrieval_request(token: Token, definition: Definition | None) -> AddRequest:
    """The ``add`` that retrieves a new token for the same connection as ``token``.

    ``delete`` both prints it (:func:`add_command`) and, on a terminal, offers to run it
    (:func:`offer_retrieval`): one request, so what runs is what was printed.
    """
    params = {
        placeholder: token.attributes[placeholder]
        for placeholder in (definition.placeholders if definition else ())
        if token.attributes.get(placeholder)
    }
    tenant = token.attributes.get("tenant_id") if definition and definition.oauth2 else None
    kind = definition.kind if definition else DefinitionKind.STATIC
    secret_from_stdin = kind is DefinitionKind.STATIC and bool(
        token.secret_set_at or not definition or definition.pass_code_mandatory
    )
    return AddRequest(
        name=token.name,
        definition=token.definition,
        description=token.description,
        identifier=token.identifier,
        secret_from_stdin=secret_from_stdin,
        login=LoginOptions(tenant=tenant or None),
        params=params,
    )


def delete_token(
    ctx: AppContext, ref: str, *, assume_yes: bool, revoke: bool = True
) -> DeleteResult:
    """Revoke at the provider where possible, then remove the secret and the record.

    Revocation failing is a warning, not a stop: the local token is deleted anyway.
    """
    token = ctx.inventory.resolve(ref)
    if not assume_yes and not ctx.io.confirm(
        f"Delete token #{token.number} {token.name!r}?", flag="--yes"
    ):
        raise TokenctlError("nothing deleted: not confirmed")
    definition = ctx.definitions.get(token.definition)
    actor = ctx.actor()  # reads config.toml: fail on a broken one before any side effect
    revoked, revocation = False, None
    stored = None
    # Only a grant can be revoked: a hand-entered token goes without opening the keyring,
    # unless its secret is still in a keyring entry of tokenctl 0.x (reading moves it in).
    if token.secret_set_at is not None and (
        definition is None or definition.oauth2 or token.legacy_secret_ref
    ):
        try:
            stored = ctx.inventory.secrets(token.number)
        except (DataKeyMissingError, SecretUnreadableError) as error:
            # Secrets that cannot be read cannot be used either: the token still goes.
            if definition is not None and definition.oauth2:
                revocation = f"not attempted: {error.message}"
                ctx.io.warn(f"cannot revoke the grant of {token.name!r}: {error.message}")
            else:
                ctx.io.warn(
                    f"cannot read the secret of {token.name!r} ({error.message}); a keyring "
                    "entry of an earlier tokenctl may be left: `tokenctl doctor` finds it"
                )
        if revoke and stored is not None and definition is None and stored.refresh_token:
            revocation = "its definition is gone, so the provider is unknown"
        if revoke and stored is not None and definition is not None and definition.oauth2:
            from tokenctl.services.revoke import revoke_grant

            revoked, revocation = revoke_grant(ctx, definition, stored, token.attributes)
    detail = "secret removed" if token.secret_set_at is not None else "no secret was stored"
    if revocation is not None:
        detail += f"; revocation: {revocation}"
    secret_removed = ctx.inventory.delete(token.number, actor, ctx.now(), detail=detail)
    return DeleteResult(
        token=token,
        secret_removed=secret_removed,
        retrieval=retrieval_request(token, definition),
        retrievable=definition is not None,
        revoked=revoked,
        revocation=revocation,
    )


RETRIEVE_QUESTION = "Retrieve a new token for this connection now?"


def offer_retrieval(ctx: AppContext, deleted: DeleteResult) -> TokenView | None:
    """On a terminal, offer to run the ``add`` that ``delete`` printed; ``None`` if not run.

    Never asked without a terminal: the printed command is the answer there.
    """
    if not deleted.retrievable or not ctx.io.can_prompt:
        return None
    if not ctx.io.confirm(RETRIEVE_QUESTION, flag="--yes"):
        return None
    return add_token(ctx, deleted.retrieval)


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
    actor = ctx.actor()  # reads config.toml: fail on a broken one before any side effect
    ctx.inventory.ensure_secrets_writable()
    pass_code = ctx.io.read_secret(
        definition.pass_code_label, from_stdin=secret_from_stdin, flag=SECRET_FLAG, required=True
    )
    assert pass_code is not None
    # The old expiry belonged to the old pass code: keep only what was said about the new one.
    changes: TokenChanges = {
        "secret_set_at": now,
        "invalid_at": None,
        "invalid_reason": None,
        "expires_at": new_expiry,
    }
    updated = ctx.inventory.update(
        token.number,
        changes,
        actor,
        now,
        event="renewed",
        detail=f"new {definition.pass_code_label} stored, encrypted",
        secrets=TokenSecrets(pass_code=pass_code),
    )
    return view_of(ctx, updated, now)


def _store_new(ctx: AppContext, draft: Token, secrets: TokenSecrets | None, now: datetime) -> Token:
    """The record and its secrets, in one transaction: both are stored or neither is."""
    return ctx.inventory.add(draft, ctx.actor(), now, secrets=secrets)


def _login_detail(result: LoginResult, options: LoginOptions, definition: Definition) -> str:
    """The history detail of a login: its mode (as asked, else the definition's) and account."""
    mode = options.mode or (definition.oauth2.login_mode if definition.oauth2 else "login")
    who = f" as {result.account}" if result.account else ""
    return f"{mode} login{who}"


def _login_changes(
    result: LoginResult, definition: Definition, now: datetime, attributes: dict[str, str]
) -> tuple[TokenSecrets, TokenChanges]:
    """The secrets to store and the record's fields for a completed login.

    ``attributes`` are the record's own (none for a new token); the login's attributes,
    then its issuer and subject, are laid over them.
    """
    from tokenctl.oauth.grants import grant_fields, secrets_of

    secrets = secrets_of(result.grant)
    fields = grant_fields(result.grant, definition, now, login=True, secrets=secrets)
    merged = dict(attributes)
    merged.update(result.attributes)
    merged.update({k: v for k, v in (("issuer", result.issuer), ("subject", result.subject)) if v})
    fields["account"] = result.account
    fields["attributes"] = merged
    return secrets, fields


def _add_oauth(ctx: AppContext, request: AddRequest, definition: Definition) -> TokenView:
    from tokenctl.oauth.grants import missing_scopes
    from tokenctl.services.login import interactive_login

    now = ctx.now()
    draft = Token(
        number=0,
        name=request.name,
        authentication_code=request.authentication_code or _generate_code(),
        definition=definition.name,
        description=request.description,
        identifier=request.identifier,
        attributes=dict(request.params),
    )
    if request.login is None:
        from tokenctl.definitions.model import fill_placeholders

        fill_placeholders(definition, request.params)  # a missing --param fails now
        token = _store_new(ctx, draft, None, now)
        ctx.io.status(
            f"Recorded {token.name!r} without logging in; retrieve its token with: "
            f"{fix_command(token.name, definition.kind)}"
        )
        return view_of(ctx, token, now)
    options = request.login
    stored: list[Token] = []

    def store(result: LoginResult) -> None:
        now = ctx.now()
        secrets, fields = _login_changes(result, definition, now, {})
        complete = replace(draft, **fields)
        try:
            token = _store_new(ctx, complete, secrets, now)
        except TokenctlError:
            # Nothing was stored (a name taken meanwhile, the keyring refused):
            # leave no live grant behind at the provider.
            result.client.revoke_grant(secrets)
            raise
        ctx.inventory.record_event(
            token,
            ctx.actor(),
            now,
            event="retrieved",
            outcome="ok",
            detail=_login_detail(result, options, definition),
        )
        stored.append(token)

    result = interactive_login(
        ctx,
        definition,
        token_name=request.name,
        expected_account=None,
        options=options,
        params=request.params,
        on_success=store,
    )
    _warn_missing(ctx, missing_scopes(result.grant, definition))
    return view_of(ctx, stored[0], ctx.now())


def _warn_missing(ctx: AppContext, missing: list[str]) -> None:
    if missing:
        ctx.io.warn(
            "the provider did not grant every required scope; missing: "
            + " ".join(missing)
            + ". The token's status is 'insufficient': sign in with an account that has the "
            "rights, or approve every scope on the consent page."
        )


def renew_token(
    ctx: AppContext,
    ref: str,
    *,
    login: LoginOptions | None = None,
    force_login: bool = False,
    allow_account_change: bool = False,
    secret_from_stdin: bool = False,
    expires_at: datetime | None = None,
    expires_in: timedelta | None = None,
) -> RenewResult:
    """Renew a token: a new pass code (static), a refresh, or an interactive login."""
    token = ctx.inventory.resolve(ref)
    definition = ctx.definitions.require(token.definition)
    ctx.actor()  # reads config.toml: fail on a broken one before any side effect
    _refuse_flags_of_the_other_kind(
        definition,
        login=login if login is not None else LoginOptions(),
        force_login=force_login,
        secret_from_stdin=secret_from_stdin,
        expiry_given=expires_at is not None or expires_in is not None,
    )
    if definition.kind is DefinitionKind.STATIC:
        view = renew_static(
            ctx,
            ref,
            secret_from_stdin=secret_from_stdin,
            expires_at=expires_at,
            expires_in=expires_in,
        )
        return RenewResult(view, RenewMethod.PASS_CODE)
    from tokenctl.services.refresh import NeedsLogin, refresh_token

    options = login or LoginOptions()
    if not force_login:
        not_due = _refresh_not_due(ctx, token, definition)
        if not_due is not None:
            return not_due
        if token.has_refresh_token:
            try:
                outcome = refresh_token(ctx, token, definition)
            except NeedsLogin as error:
                if not ctx.io.can_prompt:
                    raise
                ctx.io.warn(f"{error.message}; a browser login is needed")
            else:
                method = RenewMethod.REFRESH if outcome.refreshed else RenewMethod.CONCURRENT
                return RenewResult(view_of(ctx, outcome.token, ctx.now()), method)
        elif not ctx.io.can_prompt:
            raise AuthorizationError(
                f"token {token.name!r} has no refresh token; renewing it needs a browser login",
                hint=f"run `{fix_command(token.name, definition.kind)}`",
            )
    return _relogin(ctx, token, definition, options, allow_account_change)


def _refresh_not_due(ctx: AppContext, token: Token, definition: Definition) -> RenewResult | None:
    """``NOT_DUE`` when the provider would refuse a refresh now, else ``None``.

    Only a definition that declares ``lifetimes.refresh_margin`` says so: its provider
    refuses (and counts against its limits) a new access token asked for earlier than
    that before the current one expires. A token already refused, without a known
    expiry or without a refresh token goes on to the refresh (or the login) as before.
    """
    from tokenctl.services.access_decision import refresh_due

    margin = definition.lifetimes.refresh_margin
    if (
        margin is None
        or token.expires_at is None
        or token.invalid_at is not None
        or not token.has_refresh_token
    ):
        return None
    now = ctx.now()
    if refresh_due(token.expires_at, margin, now):
        return None
    return RenewResult(
        view_of(ctx, token, now), RenewMethod.NOT_DUE, refresh_possible_at=token.expires_at - margin
    )


def _relogin(
    ctx: AppContext,
    token: Token,
    definition: Definition,
    options: LoginOptions,
    allow_account_change: bool,
) -> RenewResult:
    from tokenctl.oauth.grants import missing_scopes
    from tokenctl.services.login import interactive_login, refuse_another_account
    from tokenctl.services.refresh import token_lock

    updated: list[Token] = []

    def check_and_store(result: LoginResult) -> None:
        refuse_another_account(
            ctx, token, definition, result, allow_account_change=allow_account_change
        )
        now = ctx.now()
        secrets, fields = _login_changes(result, definition, now, token.attributes)
        with token_lock(ctx, token):
            updated.append(
                ctx.inventory.update(
                    token.number,
                    fields,
                    ctx.actor(),
                    now,
                    event="renewed",
                    detail=_login_detail(result, options, definition),
                    secrets=secrets,
                )
            )

    result = interactive_login(
        ctx,
        definition,
        token_name=token.name,
        expected_account=token.account,
        options=options,
        params=token.attributes,
        on_success=check_and_store,
        token_number=token.number,
    )
    missing = missing_scopes(result.grant, definition)
    _warn_missing(ctx, missing)
    return RenewResult(view_of(ctx, updated[0], ctx.now()), RenewMethod.LOGIN, missing)
