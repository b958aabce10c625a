"""Provider call budgets: never more token calls than a definition's ``limits`` allow.

Some providers limit calls to their token endpoint per app and user, and block the app
when the limit is passed (Exact Online: 200 a day, one access token per 9.5 minutes).
tokenctl counts its own token calls (refreshes and code exchanges) per *budget* — one
definition, client id and account — in the inventory, so every process, and on the team
store every machine, shares the count. Before each refresh :func:`reserve_refresh` counts
it or refuses with :class:`CallBudgetExhausted`, which says from when it is possible;
a login is counted afterwards (:func:`count_login`): the user at the browser decides.

The decision is one pure function, :func:`next_call_at`, for every caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tokenctl.definitions.model import Definition, Limits
from tokenctl.errors import TokenctlError
from tokenctl.models import TokenCall
from tokenctl.timeutil import clock_text, format_duration

if TYPE_CHECKING:
    from tokenctl.context import AppContext

#: The window ``token_calls_per_day`` counts in: any 24 hours, a stricter rule than a
#: calendar day, so tokenctl stays within either reading of "a day".
WINDOW = timedelta(days=1)


class CallBudgetExhausted(TokenctlError):  # noqa: N818 - reads as a state
    """A token call now would pass the provider's limit; ``possible_at`` says from when not."""

    def __init__(self, message: str, *, possible_at: datetime, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.possible_at = possible_at


def budget_key(
    definition: Definition, client_id: str | None, account: str | None, number: int | None
) -> str | None:
    """The name of one budget: the definition, its client id and the account.

    A token whose account is not known (recorded before tokenctl knew it, or a who-am-I
    call that failed) has a budget of its own, by its number: pooled with the others
    it would starve them. ``None`` when neither is known (a new token's first login).
    """
    who = account if account else (f"#{number}" if number is not None else None)
    if who is None:
        return None
    return "\x1f".join((definition.name, client_id or "", who))


def next_call_at(
    calls: Sequence[TokenCall], now: datetime, limits: Limits, token: int | None
) -> datetime | None:
    """When the next token call for ``token`` is allowed: ``None`` for now, else the time.

    ``calls`` are the budget's counted calls, oldest first (calls older than
    :data:`WINDOW` do not count). The daily limit counts every call of the budget (the
    app and account); the interval only ``token``'s own calls (one connection's access
    tokens: Exact Online's one per 9.5 minutes).
    """
    recent = sorted((call for call in calls if call.at > now - WINDOW), key=lambda c: c.at)
    waits: list[datetime] = []
    if limits.token_calls_per_day is not None and len(recent) >= limits.token_calls_per_day:
        # The oldest call that must leave the window for one more to fit.
        waits.append(recent[len(recent) - limits.token_calls_per_day].at + WINDOW)
    own = [call.at for call in recent if token is not None and call.token == token]
    if limits.min_token_interval is not None and own:
        waits.append(own[-1] + limits.min_token_interval)
    later = [moment for moment in waits if moment > now]
    return max(later) if later else None


@dataclass(frozen=True)
class BudgetState:
    """What is left of one budget now (``show``, ``doctor``)."""

    limits: Limits
    used: int  # calls in the last WINDOW
    last_call_at: datetime | None
    next_call_at: datetime | None  # None: a call is possible now

    @property
    def remaining(self) -> int | None:
        """Calls left in the window; ``None`` without a daily limit."""
        if self.limits.token_calls_per_day is None:
            return None
        return max(0, self.limits.token_calls_per_day - self.used)

    def to_dict(self) -> dict[str, object]:
        """The documented ``token_calls`` object (docs/json.md)."""
        from tokenctl.timeutil import to_iso

        return {
            "used": self.used,
            "limit_per_day": self.limits.token_calls_per_day,
            "remaining": self.remaining,
            "min_interval": (
                None
                if self.limits.min_token_interval is None
                else format_duration(self.limits.min_token_interval)
            ),
            "last_call_at": to_iso(self.last_call_at),
            "next_call_at": to_iso(self.next_call_at),
        }


def budget_state(
    ctx: AppContext, definition: Definition, account: str | None, number: int | None
) -> BudgetState | None:
    """The budget of token ``number`` (``definition``'s client, ``account``) now.

    ``None`` without limits. With ``number`` ``None`` (``doctor``: the app and account),
    only the daily limit decides the next call.
    """
    if not definition.limits.any or definition.oauth2 is None:
        return None
    now = ctx.now()
    key = budget_key(definition, definition.oauth2.client_id, account, number)
    calls = [] if key is None else ctx.inventory.token_calls(key, now - WINDOW)
    return BudgetState(
        limits=definition.limits,
        used=len(calls),
        last_call_at=calls[-1].at if calls else None,
        next_call_at=next_call_at(calls, now, definition.limits, number),
    )


def describe_limits(limits: Limits, account: str | None = None) -> str:
    """The limits as the user reads them.

    ``200 token calls a day for this app and alice, and one per 9m30s for each token``.
    """
    parts = []
    if limits.token_calls_per_day is not None:
        who = f" and {account}" if account else ""
        parts.append(f"{limits.token_calls_per_day} token calls a day for this app{who}")
    if limits.min_token_interval is not None:
        parts.append(f"one per {format_duration(limits.min_token_interval)} for each token")
    return ", and ".join(parts)


def reserve_refresh(
    ctx: AppContext,
    definition: Definition,
    client_id: str,
    account: str | None,
    number: int,
    name: str,
) -> None:
    """Count the refresh about to be sent, or raise :class:`CallBudgetExhausted`.

    Called under the token's lease, right before the provider call, by the one refresh
    transaction (:mod:`tokenctl.services.refresh`). A definition without limits costs
    nothing here.
    """
    limits = definition.limits
    if not limits.any:
        return
    now = ctx.now()
    key = budget_key(definition, client_id, account, number)
    assert key is not None  # a number is always given
    refused_until = ctx.inventory.count_token_call(
        key,
        TokenCall(now, number),
        lambda calls: next_call_at(calls, now, limits, number),
        keep_since=now - WINDOW,
    )
    if refused_until is None:
        return
    raise CallBudgetExhausted(
        f"{name!r} was not refreshed: {definition.title} allows "
        f"{describe_limits(limits, account)}, and a refresh now would pass that; it is "
        f"possible from {clock_text(refused_until, seconds=True)}Z",
        possible_at=refused_until,
        hint="run it again from then on (`tokenctl renew --all` from cron picks it up); the "
        "limit is counted for every token of the same app and account",
    )


def count_login(
    ctx: AppContext,
    definition: Definition,
    client_id: str,
    account: str | None,
    number: int | None,
    at: datetime,
) -> None:
    """Count a login's code exchange made ``at`` (always: the user chose to log in now).

    ``number``: the token it renews; ``None`` for ``add`` (counted for the app and
    account; a new token's own interval starts with its first refresh).
    """
    limits = definition.limits
    key = budget_key(definition, client_id, account, number)
    if not limits.any or key is None:
        return
    ctx.inventory.count_token_call(
        key, TokenCall(at, number), lambda _calls: None, keep_since=at - WINDOW
    )
