"""Definition services: list, show, add from a file, remove."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenctl.context import AppContext
from tokenctl.definitions.model import Definition
from tokenctl.definitions.registry import (
    add_user_definitions,
    load_definition_file,
    remove_user_definition,
)
from tokenctl.errors import ConflictError, NotFoundError, UsageError


@dataclass(frozen=True)
class DefinitionEntry:
    """A definition with how many tokens use it and whether it overrides a built-in."""

    definition: Definition
    token_count: int
    overrides_builtin: bool


@dataclass(frozen=True)
class AddDefinitionsResult:
    """What ``definitions add`` wrote."""

    added: list[Definition]
    overridden_builtins: list[str]
    replaced: list[str]
    file: Path


@dataclass(frozen=True)
class RemoveDefinitionResult:
    """What ``definitions remove`` did."""

    name: str
    file: Path
    reverted_to_builtin: bool
    orphaned_tokens: list[str]


def _counts(ctx: AppContext) -> dict[str, int]:
    counts: dict[str, int] = {}
    for token in ctx.inventory.tokens():
        counts[token.definition] = counts.get(token.definition, 0) + 1
    return counts


def list_definitions(ctx: AppContext) -> list[DefinitionEntry]:
    """Every definition in effect, by classification then name, with token counts."""
    definitions = ctx.definitions
    counts = _counts(ctx)
    return [
        DefinitionEntry(d, counts.get(d.name, 0), definitions.overrides_builtin(d.name))
        for d in definitions
    ]


def show_definition(ctx: AppContext, name: str) -> DefinitionEntry:
    """One definition in effect."""
    definitions = ctx.definitions
    definition = definitions.require(name)
    count = len(ctx.inventory.names_using_definition(name))
    return DefinitionEntry(definition, count, definitions.overrides_builtin(name))


@dataclass(frozen=True)
class RelayPageResult:
    """The relay page to host, and the one port it forwards to (``None``: the state's)."""

    html: str
    fixed_port: int | None
    definition: str | None


def relay_page_for(ctx: AppContext, name: str | None, port: int | None) -> RelayPageResult:
    """The relay page; for a definition with ``oauth2.redirect_port`` fixed to that port.

    A page without a fixed port forwards to whichever loopback port the ``state`` of the
    request names (see docs/login.md): the fixed port is the default whenever it is known.
    """
    from tokenctl.oauth.relay import FIXED_PORTS, relay_page

    fixed = port
    if name is not None:
        definition = ctx.definitions.require(name)
        settings = definition.oauth2
        configured = settings.redirect_port if settings else None
        if port is not None and configured is not None and port != configured:
            raise UsageError(
                f"--port {port} differs from definition {name!r}'s redirect_port {configured}",
                hint="leave out --port: the page then uses the definition's port",
            )
        fixed = port if port is not None else configured
    if fixed is not None and fixed not in FIXED_PORTS:
        raise UsageError(
            f"the relay page can forward only to ports {FIXED_PORTS.start}-"
            f"{FIXED_PORTS.stop - 1}, not {fixed}",
            hint="give the definition a redirect_port in that range "
            "(tokenctl definitions configure NAME --redirect-port PORT)",
        )
    return RelayPageResult(relay_page(fixed), fixed, name)


def add_definitions(ctx: AppContext, file: Path, *, replace: bool) -> AddDefinitionsResult:
    """Validate every definition in ``file`` and merge them into the user's definitions."""
    new = load_definition_file(file)
    if not new:
        raise UsageError(f"{file} holds no [definitions.NAME] table")
    current = ctx.definitions
    replaced = sorted(name for name in new if name in current.user)
    add_user_definitions(
        ctx.paths.definitions_file, ctx.paths.definitions_lock, new, replace=replace
    )
    return AddDefinitionsResult(
        added=list(new.values()),
        overridden_builtins=sorted(name for name in new if name in current.builtin),
        replaced=replaced,
        file=ctx.paths.definitions_file,
    )


def remove_definition(ctx: AppContext, name: str, *, force: bool) -> RemoveDefinitionResult:
    """Remove a user definition; refused while tokens depend on it, unless ``force``."""
    current = ctx.definitions
    if name not in current.user:
        if name in current.builtin:
            raise UsageError(
                f"{name!r} is a built-in definition and cannot be removed",
                hint="override it with `tokenctl definitions add --file F` instead",
            )
        raise NotFoundError(
            f"no user definition named {name!r}",
            hint="run `tokenctl definitions` to see the available definitions",
        )
    reverts = name in current.builtin
    users = [] if reverts else list(ctx.inventory.names_using_definition(name))
    if users and not force:
        raise ConflictError(
            f"definition {name!r} is used by {len(users)} token(s): {', '.join(users[:5])}"
            + (" ..." if len(users) > 5 else ""),
            hint="delete those tokens first, or pass --force to remove it anyway",
        )
    removed = current.user[name].oauth2
    remove_user_definition(ctx.paths.definitions_file, ctx.paths.definitions_lock, name)
    builtin = current.builtin.get(name)
    kept_client = builtin.oauth2.client_id if builtin and builtin.oauth2 else None
    from tokenctl.config import StoreKind

    # No definition of this home names that client any more: its secret would never be
    # sent again. On the team store other machines' definitions may still use it.
    local = ctx.config.store.kind is StoreKind.LOCAL
    if local and removed is not None and removed.client_id and removed.client_id != kept_client:
        ctx.inventory.delete_client_secret(name, removed.client_id)
    return RemoveDefinitionResult(
        name=name,
        file=ctx.paths.definitions_file,
        reverted_to_builtin=reverts,
        orphaned_tokens=users,
    )


@dataclass(frozen=True)
class DiscoverRequest:
    """``definitions add NAME --issuer URL`` and its options."""

    name: str
    issuer: str
    title: str | None = None
    classification: str | None = None
    scopes: tuple[str, ...] = ()
    client_id: str | None = None
    replace: bool = False


def add_discovered_definition(ctx: AppContext, request: DiscoverRequest) -> AddDefinitionsResult:
    """Create an ``oauth2`` definition from the issuer's discovery document."""
    from tokenctl.definitions.model import DISCOVERABLE_ENDPOINTS, parse_definition
    from tokenctl.oauth.provider import discover

    metadata = discover(request.issuer)
    supported = metadata.get("scopes_supported") or []
    scopes = list(request.scopes) or [s for s in ("openid", "offline_access") if s in supported]
    oauth: dict[str, object] = {"issuer": metadata["issuer"], "scopes": scopes}
    for key in DISCOVERABLE_ENDPOINTS:
        if isinstance(metadata.get(key), str):
            oauth[key] = metadata[key]
    # Recorded so that logins (which then skip discovery) still insist on `iss` (RFC 9207).
    oauth["iss_parameter_supported"] = bool(
        metadata.get("authorization_response_iss_parameter_supported", False)
    )
    if request.client_id:
        oauth["client_id"] = request.client_id
    table: dict[str, object] = {
        "title": request.title or request.name,
        "classification": request.classification or "OpenID Connect",
        "kind": "oauth2",
        "oauth2": oauth,
    }
    definition = parse_definition(request.name, table, f"discovery of {request.issuer}")
    current = ctx.definitions
    add_user_definitions(
        ctx.paths.definitions_file,
        ctx.paths.definitions_lock,
        {request.name: definition},
        replace=request.replace,
    )
    return AddDefinitionsResult(
        added=[definition],
        overridden_builtins=[request.name] if request.name in current.builtin else [],
        replaced=[request.name] if request.name in current.user else [],
        file=ctx.paths.definitions_file,
    )


@dataclass(frozen=True)
class ConfigureResult:
    """What ``definitions configure`` changed."""

    name: str
    client_id: str
    secret_stored: bool
    auth_method: str | None
    file: Path


def configure_definition(
    ctx: AppContext,
    name: str,
    *,
    client_id: str,
    secret_from_stdin: bool,
    auth_method: str | None,
    login_mode: str | None = None,
    redirect_uri: str | None = None,
    redirect_port: int | None = None,
) -> ConfigureResult:
    """Set the client id (in definitions.toml) and client secret (sealed in the inventory).

    Also the site-specific login settings (mode, registered redirect URI, fixed port), so a
    built-in needs no hand-copied override file.
    """
    from tokenctl.definitions.model import AUTH_METHODS, LOGIN_MODES, parse_definition

    if auth_method is not None and auth_method not in AUTH_METHODS:
        raise UsageError(
            f"invalid --auth-method {auth_method!r}",
            hint="use none, client_secret_basic or client_secret_post",
        )
    if login_mode is not None and login_mode not in LOGIN_MODES:
        raise UsageError(
            f"invalid --login-mode {login_mode!r}", hint="use loopback, paste, device or relay"
        )
    current = ctx.definitions.require(name)
    if current.oauth2 is None:
        raise UsageError(f"definition {name!r} is static; only OAuth definitions have a client")
    table = {key: value for key, value in current.raw.items()}
    oauth = dict(table.get("oauth2") or {})
    oauth["client_id"] = client_id
    if auth_method:
        oauth["token_endpoint_auth_method"] = auth_method
    for key, value in (
        ("login_mode", login_mode),
        ("redirect_uri", redirect_uri),
        ("redirect_port", redirect_port),
    ):
        if value is not None:
            oauth[key] = value
    table["oauth2"] = oauth
    definition = parse_definition(name, table, str(ctx.paths.definitions_file))
    secret = None
    if secret_from_stdin:
        ctx.inventory.ensure_secrets_writable()
        secret = ctx.io.read_secret(
            "client secret", from_stdin=True, flag="--client-secret-stdin", required=True
        )
    if secret is not None:
        # The secret first: a store that refuses it (a team store's policy) leaves
        # definitions.toml as it was; a secret kept for a client id not written after
        # all is only ever read for that client id, and the next run replaces it.
        ctx.inventory.set_client_secret(name, client_id, secret)
    add_user_definitions(
        ctx.paths.definitions_file, ctx.paths.definitions_lock, {name: definition}, replace=True
    )
    return ConfigureResult(
        name, client_id, secret is not None, auth_method, ctx.paths.definitions_file
    )
