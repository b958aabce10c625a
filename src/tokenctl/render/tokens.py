"""Rendering of tokens: the overview, one token, and the results of changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tokenctl.definitions import DefinitionKind
from tokenctl.iostreams import IOStreams
from tokenctl.models import HistoryEvent, Status
from tokenctl.render import plain_row, write_data, write_json
from tokenctl.textsafe import safe_line
from tokenctl.timeutil import clock_text, format_duration, relative, to_iso

if TYPE_CHECKING:
    from rich.text import Text

    from tokenctl.services.budget import BudgetState
    from tokenctl.services.tokens import (
        DeleteResult,
        RenewResult,
        StateChange,
        TokenDetail,
        TokenListing,
        TokenView,
    )

STATUS_STYLES = {
    Status.VALID: "green",
    Status.EXPIRING: "yellow",
    Status.EXPIRED: "red",
    Status.INVALID: "bold red",
    Status.INSUFFICIENT: "magenta",
    Status.UNKNOWN: "dim",
}


def token_to_dict(view: TokenView) -> dict[str, Any]:
    """The documented JSON ``token`` object (see docs/json.md). Never holds a secret."""
    token = view.token
    definition = view.definition
    required = definition.required_scopes if definition else ()
    return {
        "number": token.number,
        "name": token.name,
        "authentication_code": token.authentication_code,
        "definition": token.definition,
        "type": view.type_title,
        "classification": definition.classification if definition else None,
        "description": token.description,
        "identifier": token.identifier,
        "account": token.account,
        "state": token.state.value,
        "status": view.status.value,
        "expires_at": to_iso(token.expires_at),
        "refresh_expires_at": to_iso(token.refresh_expires_at),
        "connection_expires_at": to_iso(view.connection_expires_at),
        "has_refresh_token": token.has_refresh_token,
        "refreshed_at": to_iso(token.refreshed_at),
        "probed_at": to_iso(token.probed_at),
        "probe_result": token.probe_result,
        "granted_scopes": None if token.granted_scopes is None else list(token.granted_scopes),
        "required_scopes": list(required),
        "missing_scopes": token.missing_scopes(required) if required else [],
        "secret_stored": token.secret_set_at is not None,
        "secret_set_at": to_iso(token.secret_set_at),
        "invalid_at": to_iso(token.invalid_at),
        "invalid_reason": token.invalid_reason,
        "attributes": dict(token.attributes),
        "log": {
            "created_at": to_iso(token.created_at),
            "created_by": token.created_by,
            "created_unit": token.created_unit,
            "updated_at": to_iso(token.updated_at),
            "updated_by": token.updated_by,
            "updated_unit": token.updated_unit,
            "created_identity": token.created_identity,
            "updated_identity": token.updated_identity,
        },
    }


def event_to_dict(event: HistoryEvent) -> dict[str, Any]:
    """The documented JSON ``history`` entry."""
    return {
        "at": to_iso(event.at),
        "event": event.event,
        "user": event.user,
        "unit": event.unit,
        "identity": event.identity,
        "outcome": event.outcome,
        "detail": event.detail,
    }


def _as_identity(identity: str | None) -> str:
    """`` as IDENTITY`` after who changed a record, when the store knows an identity."""
    return "" if identity is None else f" as {identity}"


def _by(event: HistoryEvent) -> str:
    """Who made a history event: ``user@unit``, and the store identity when there is one."""
    return f"{event.user}@{event.unit}" + _as_identity(event.identity)


def _account(view: TokenView) -> str | None:
    """Who the token was retrieved as, with the tenant (administration) it was recorded for."""
    token = view.token
    who = token.account or token.identifier
    tenant = token.attributes.get("tenant") or token.attributes.get("tenants")
    if tenant:
        return f"{who} [{tenant}]" if who else f"[{tenant}]"
    return who


def _status_text(status: Status) -> Text:
    from rich.text import Text

    return Text(status.value, style=STATUS_STYLES[status])


def _expires(view: TokenView, now: datetime) -> str:
    """The connection's end: for refreshable tokens the refresh horizon, not the access token."""
    expires = view.connection_expires_at
    if expires is None:
        return "renewable" if view.token.has_refresh_token else "—"
    return f"{clock_text(expires)} ({relative(expires, now)})"


def _plain_line(view: TokenView) -> str:
    """One token of the overview in a pipe: tab-separated, no header."""
    token = view.token
    return plain_row(
        [
            str(token.number),
            token.name,
            view.type_title,
            token.description,
            _account(view),
            view.status.value,
            to_iso(view.connection_expires_at),
            token.state.value,
        ]
    )


def render_listing(io: IOStreams, listing: TokenListing, *, as_json: bool) -> None:
    """The overview, as JSON, a rich table (TTY) or tab-separated lines (pipe)."""
    if as_json:
        write_json(io, "tokens", [token_to_dict(view) for view in listing.views])
        return
    if not listing.views:
        if listing.total == 0:
            io.status("No tokens yet. Add one with: tokenctl add NAME --definition api-key")
        else:
            io.status(f"No tokens match ({listing.total} in total; drop the filters to see them).")
        return
    if not io.stdout_tty:
        write_data(io, "".join([_plain_line(view) for view in listing.views]))
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("#", "Name", "Type", "Description", "Account", "Status", "Expires", "State"):
        table.add_column(column, justify="right" if column == "#" else "left", overflow="fold")
    for view in listing.views:
        token = view.token
        # Text() keeps user-entered brackets from being read as rich markup; safe_line
        # keeps control characters (ESC, CSI, OSC ...) from driving the terminal.
        table.add_row(
            Text(str(token.number)),
            Text(safe_line(token.name)),
            Text(safe_line(view.type_title)),
            Text(safe_line(token.description or "")),
            Text(safe_line(_account(view) or "")),
            _status_text(view.status),
            Text(_expires(view, listing.now)),
            Text(token.state.value.replace("_", " ")),
            style=None if token.is_effective else "dim",
        )
    io.out.print(table)


def render_detail(io: IOStreams, detail: TokenDetail, *, as_json: bool) -> None:
    """Every field of one token, its log information and its latest history."""
    view = detail.view
    if as_json:
        payload = token_to_dict(view)
        payload["secret"] = {
            "stored": view.token.secret_set_at is not None,
            "keyring_service": "tokenctl",
            "key_entry": detail.key_entry,
            # Compatible with 0.x: the token's own entry, only while it still holds the secret.
            "keyring_entry": view.token.legacy_secret_ref,
        }
        payload["history"] = [event_to_dict(event) for event in detail.history]
        if detail.probe is not None:
            payload["probe"] = {"result": detail.probe.result, "detail": detail.probe.detail}
        if detail.budget is not None:
            payload["token_calls"] = detail.budget.to_dict()
        write_json(io, "token", payload)
        return
    if detail.probe is not None:
        io.status(f"Probe: {detail.probe.result} ({safe_line(detail.probe.detail)})")
    token = view.token
    definition = view.definition
    required = definition.required_scopes if definition else ()
    granted = token.granted_scopes
    missing = token.missing_scopes(required)
    if not token.secret_set_at:
        secret = "none stored"  # noqa: S105 - a description, not a secret
    elif token.legacy_secret_ref:
        secret = (
            f"in the OS keyring (service tokenctl, entry {token.legacy_secret_ref}) until its "
            f"first use moves it into the inventory, set {to_iso(token.secret_set_at)}"
        )
    else:
        secret = (
            f"stored encrypted in the inventory (data key in the OS keyring, service tokenctl, "
            f"entry {detail.key_entry}), set {to_iso(token.secret_set_at)}"
        )
    fields: list[tuple[str, str]] = [
        ("Number", str(token.number)),
        ("Name", token.name),
        ("Authentication code", token.authentication_code),
        ("Type", f"{view.type_title} ({token.definition})"),
        ("Classification", definition.classification if definition else "(definition missing)"),
        ("Description", token.description or ""),
        ("Identifier", token.identifier or ""),
    ]
    if view.kind is DefinitionKind.OAUTH2:
        fields += [
            ("Account", token.account or ""),
            ("State", token.state.value),
            ("Status", view.status.value),
            ("Expires", _expires(view, detail.now)),
            ("Access token expires", to_iso(token.expires_at) or "—"),
            (
                "Refresh token",
                ("stored" if token.has_refresh_token else "none")
                + (
                    f", expires {to_iso(token.refresh_expires_at)}"
                    if token.refresh_expires_at
                    else ""
                ),
            ),
            ("Last renewed", to_iso(token.refreshed_at) or "—"),
            (
                "Last probe",
                f"{token.probe_result} at {to_iso(token.probed_at)}"
                if token.probed_at
                else "never",
            ),
            ("Granted scopes", " ".join(granted) if granted is not None else "—"),
            ("Required scopes", " ".join(required) or "—"),
            ("Missing scopes", " ".join(missing) or "—"),
        ]
        if detail.budget is not None:
            fields.append(("Token calls", _budget_text(detail.budget)))
    else:  # hand-entered: its pass code's expiry is the one that counts; no OAuth fields
        fields += [
            ("State", token.state.value),
            ("Status", view.status.value),
            ("Expires", _expires(view, detail.now)),
        ]
    fields.append(("Secret", f"{secret} (value never shown)"))
    if token.invalid_at:
        fields.append(
            ("Invalid since", f"{to_iso(token.invalid_at)}: {token.invalid_reason or ''}")
        )
    for key, value in sorted(token.attributes.items()):
        fields.append((key.replace("_", " ").capitalize(), value))
    fields += [
        (
            "Created",
            f"{to_iso(token.created_at)} by {token.created_by} on {token.created_unit}"
            + _as_identity(token.created_identity),
        ),
        (
            "Updated",
            f"{to_iso(token.updated_at)} by {token.updated_by} on {token.updated_unit}"
            + _as_identity(token.updated_identity),
        ),
    ]
    # Values (and attribute names) come from the user and the provider: one line each.
    fields = [(safe_line(key), safe_line(value)) for key, value in fields]
    if not io.stdout_tty:
        for key, value in fields:
            io.write(f"{key}:\t{value}\n")
        io.write("History:\n")
        for event in detail.history:
            io.write(
                "\t"
                + plain_row(
                    [
                        to_iso(event.at),
                        event.event,
                        event.outcome,
                        _by(event),
                        event.detail,
                    ]
                )
            )
        return
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in fields:
        table.add_row(Text(key), _status_text(view.status) if key == "Status" else Text(value))
    io.out.print(table)
    history = Table(title="History", title_justify="left", box=None, header_style="bold")
    for column in ("When", "Event", "Outcome", "By", "Detail"):
        history.add_column(column, overflow="fold")
    for event in detail.history:
        history.add_row(
            clock_text(event.at, seconds=True),
            Text(safe_line(event.event)),
            Text(safe_line(event.outcome)),
            Text(safe_line(_by(event))),
            Text(safe_line(event.detail or "")),
        )
    io.out.print()
    io.out.print(history)


def render_added(io: IOStreams, view: TokenView, *, as_json: bool) -> None:
    """Confirm a new token: data (number, name, code) on stdout, the story on stderr."""
    if as_json:
        write_json(io, "token", token_to_dict(view))
        return
    token = view.token
    io.status(
        f"Added token #{token.number} {token.name!r} ({view.type_title}), "
        f"authentication code {token.authentication_code}; status {view.status.value}"
        + (f", account {safe_line(token.account)}." if token.account else ".")
    )
    io.write(f"{token.number}\n")


def render_deleted(io: IOStreams, result: DeleteResult) -> None:
    """Say what was deleted and print the command that retrieves a new token."""
    token = result.token
    if result.revocation is not None:
        if result.revoked:
            io.status(f"Revoked at the provider: {safe_line(result.revocation)}.")
        else:
            io.warn(f"not revoked at the provider ({result.revocation}); deleted locally anyway")
    secret = "its secret was removed" if result.secret_removed else ("it had no secret stored")
    io.status(f"Deleted token #{token.number} {token.name!r}; {secret}.")
    io.status("To retrieve a new token for the same connection, run:")
    # Shell-quoted by textsafe.shell_join: control characters as $'\x1b', so the command
    # shows no raw control character and still recreates the exact values.
    io.write(safe_line(result.renew_command) + "\n")


def render_state_change(io: IOStreams, change: StateChange) -> None:
    """Say whether the life-cycle state changed."""
    token = change.view.token
    state = token.state.value.replace("_", " ")
    if change.changed:
        io.status(f"Token #{token.number} {token.name!r} is now {state}.")
    else:
        io.status(f"Token #{token.number} {token.name!r} was already {state}; nothing changed.")


def _budget_text(budget: BudgetState) -> str:
    """``12 of 200 in the last 24 h (app and account); next possible now``."""
    limit = budget.limits.token_calls_per_day
    used = f"{budget.used} of {limit}" if limit is not None else str(budget.used)
    interval = budget.limits.min_token_interval
    every = f", at most one per {format_duration(interval)}" if interval is not None else ""
    when = (
        "now"
        if budget.next_call_at is None
        else f"from {clock_text(budget.next_call_at.astimezone(UTC), seconds=True)}Z"
    )
    return f"{used} in the last 24 h for this app and account{every}; next possible {when}"


def _utc_clock(moment: datetime | None) -> str:
    if moment is None:
        return "an unknown time"
    return f"{clock_text(moment.astimezone(UTC), seconds=True)}Z"


def render_renewed(io: IOStreams, result: RenewResult, *, as_json: bool = False) -> None:
    """Confirm a renewal and say how it was done."""
    from tokenctl.services.tokens import RenewMethod  # loaded already: it made the result

    view = result.view
    if as_json:
        payload = token_to_dict(view)
        payload["renewed_by"] = result.method
        if result.refresh_possible_at is not None:
            payload["refresh_possible_at"] = to_iso(result.refresh_possible_at)
        write_json(io, "token", payload)
    token = view.token
    if result.method is RenewMethod.NOT_DUE and result.refresh_possible_at is not None:
        title = view.definition.title if view.definition else token.definition
        io.status(
            f"Token #{token.number} {token.name!r} was not renewed: its access token is valid"
            f" until {_utc_clock(token.expires_at)}, and the definition {safe_line(title)}"
            f" refreshes it only from {_utc_clock(result.refresh_possible_at)} on (its"
            " refresh margin; the provider refuses earlier refreshes). Run the same command"
            f" from then on, or `tokenctl renew {token.name} --login` to log in anew now."
        )
        return
    if as_json:
        return
    how = {
        RenewMethod.REFRESH: "refreshed without a browser",
        RenewMethod.LOGIN: "renewed by a login"
        + (f" as {safe_line(token.account)}" if token.account else ""),
        RenewMethod.PASS_CODE: "renewed with a new pass code",
        RenewMethod.CONCURRENT: "already renewed by another tokenctl process; using that",
    }[result.method]
    expires = to_iso(view.connection_expires_at)
    io.status(
        f"Token #{token.number} {token.name!r} {how}; status {view.status.value}"
        + (f", expires {expires}." if expires else ".")
    )
