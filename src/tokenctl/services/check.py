"""``check``: which effective tokens need attention, why, and the command that fixes each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tokenctl.context import AppContext
from tokenctl.definitions import DefinitionKind
from tokenctl.errors import ExitCode, TokenctlError
from tokenctl.models import Status, refresh_idle_end
from tokenctl.services.fix_commands import fix_command
from tokenctl.services.tokens import TokenView, view_of
from tokenctl.timeutil import clock_text

#: Statuses that make a connection fail now (exit code 11).
FAILING = frozenset({Status.EXPIRED, Status.INVALID, Status.INSUFFICIENT})


class Severity(StrEnum):
    """How urgent a finding is: exit code 10 for expiring, 11 for failing."""

    EXPIRING = "expiring"
    FAILING = "failing"


@dataclass(frozen=True)
class Finding:
    """One token that needs attention."""

    view: TokenView
    severity: Severity
    reason: str
    fix: str


@dataclass(frozen=True)
class CheckReport:
    """The outcome of ``check``."""

    findings: list[Finding]
    checked: int
    skipped_not_effective: int
    within: timedelta
    now: datetime
    #: Every checked token, in the order checked (``--format openmetrics`` shows them all;
    #: the webhooks judge each).
    views: tuple[TokenView, ...] = ()

    @property
    def exit_code(self) -> ExitCode:
        """11 when any token fails, 10 when some only expire soon, else 0."""
        if any(f.severity is Severity.FAILING for f in self.findings):
            return ExitCode.CHECK_FAILING
        if self.findings:
            return ExitCode.CHECK_EXPIRING
        return ExitCode.OK


def _fix(view: TokenView, *, login: bool) -> str:
    kind = view.definition.kind if view.definition else None
    return fix_command(view.token.name, kind, login=login)


def _assess(view: TokenView, now: datetime, within: timedelta) -> Finding | None:
    token = view.token
    status = view.status
    oauth = view.definition is not None and view.definition.kind is DefinitionKind.OAUTH2
    if token.secret_set_at is None:
        return Finding(view, Severity.FAILING, "no secret is stored", _fix(view, login=True))
    if status in FAILING:
        reason = {
            Status.EXPIRED: "expired",
            Status.INVALID: f"invalid: {token.invalid_reason or 'refused by the provider'}",
            Status.INSUFFICIENT: "the grant lacks required scopes: "
            + " ".join(
                token.missing_scopes(view.definition.required_scopes if view.definition else ())
            ),
        }[status]
        return Finding(view, Severity.FAILING, reason, _fix(view, login=True))
    expiry = view.connection_expires_at
    if expiry is not None and expiry - now <= within:
        if token.has_refresh_token:
            idle = view.definition.lifetimes.refresh_token_idle if view.definition else None
            idle_end = refresh_idle_end(token, idle)
            # A refresh only helps against the inactivity limit, not a fixed end.
            by_idle = idle_end is not None and idle_end == expiry
            reason = (
                "the refresh token dies unused at " if by_idle else "the refresh token expires at "
            ) + f"{clock_text(expiry)}Z"
            return Finding(view, Severity.EXPIRING, reason, _fix(view, login=not by_idle))
        what = "the token" if not oauth else "the access token (no refresh token)"
        return Finding(
            view,
            Severity.EXPIRING,
            f"{what} expires at {clock_text(expiry)}Z",
            _fix(view, login=oauth),
        )
    return None


def run_check(
    ctx: AppContext,
    refs: Sequence[str] = (),
    *,
    within: timedelta | None = None,
    definition: str | None = None,
    probe: bool = False,
    notify: bool = False,
) -> CheckReport:
    """Assess every effective token (or those named); ``probe`` asks the providers too.

    ``notify``: tell config.toml's webhooks of each token whose state changed since the
    last notice (:mod:`tokenctl.services.notify`; never changes the report).
    """
    window = within if within is not None else ctx.config.expiring_window
    ctx.definitions  # noqa: B018 - a broken definitions file is an error, not a finding
    tokens = [ctx.inventory.resolve(ref) for ref in refs] if refs else ctx.inventory.tokens()
    # A token named twice (`check 3 acme` when acme is #3) is checked once: the metrics
    # must not repeat a series, and the counts must not count it twice.
    tokens = list({token.number: token for token in tokens}.values())
    if definition is not None:
        ctx.definitions.require(definition)  # a misspelt name must not pass silently
        tokens = [t for t in tokens if t.definition == definition]
    effective = [t for t in tokens if t.is_effective]
    if probe:
        from tokenctl.services.probe import probe_token

        probed = []
        for token in effective:
            token_definition = ctx.definitions.get(token.definition)
            if (
                token_definition is not None
                and token_definition.oauth2 is not None
                and token.secret_set_at is not None
            ):
                try:
                    token = probe_token(ctx, token, token_definition).token
                except TokenctlError as error:
                    # One definition without a who-am-I call, or one provider's hiccup,
                    # must not hide the other tokens' results.
                    ctx.io.warn(f"{token.name}: not probed ({error.message})")
            probed.append(token)
        effective = probed
    now = ctx.now()
    findings = []
    views = []
    for token in effective:
        view = view_of(ctx, token, now)
        views.append(view)
        finding = _assess(view, now, window)
        if finding is not None:
            findings.append(finding)
    report = CheckReport(
        findings=findings,
        checked=len(effective),
        skipped_not_effective=len(tokens) - len(effective),
        within=window,
        now=now,
        views=tuple(views),
    )
    if notify and ctx.config.webhooks:
        from tokenctl.services.notify import check_observations, send_notices

        send_notices(ctx, check_observations(ctx, report), "check")
    return report
