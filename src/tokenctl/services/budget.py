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


def budget_key(definition: Definition, client_id: str | None, account: str | None) -> str:
    """The name of one budget: the definition, its client id and the account (unit separated)."""
    return "\x1f".join((definition.name, client_id or "", account or ""))


def next_call_at(calls: Sequence[datetime], now: datetime, limits: Limits) -> datetime | None:
    """When the next token call is allowed: ``None`` for now, else the earliest time.

    ``calls`` are the counted calls of the last :data:`WINDOW`, oldest first (older ones
    may be given; they do not count).
    """
    recent = sorted(moment for moment in calls if moment > now - WINDOW)
    waits: list[datetime] = []
    if limits.token_calls_per_day is not None and len(recent) >= limits.token_calls_per_day:
        # The oldest call that must leave the window for one more to fit.
        waits.append(recent[len(recent) - limits.token_calls_per_day] + WINDOW)
    if limits.min_token_interval is not None and recent:
        waits.append(recent[-1] + limits.min_token_interval)
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
    ctx: AppContext, definition: Definition, account: str | None
) -> BudgetState | None:
    """The budget of ``definition``'s client and ``account`` now; ``None`` without limits."""
    if not definition.limits.any or definition.oauth2 is None:
        return None
    now = ctx.now()
    key = budget_key(definition, definition.oauth2.client_id, account)
    calls = ctx.inventory.token_calls(key, now - WINDOW)
    return BudgetState(
        limits=definition.limits,
        used=len(calls),
        last_call_at=calls[-1] if calls else None,
        next_call_at=next_call_at(calls, now, definition.limits),
    )


def describe_limits(limits: Limits) -> str:
    """The limits as the user reads them: ``200 token calls a day, one per 9m30s``."""
    parts = []
    if limits.token_calls_per_day is not None:
        parts.append(f"{limits.token_calls_per_day} token calls a day")
    if limits.min_token_interval is not None:
        parts.append(f"one per {format_duration(limits.min_token_interval)}")
    return ", ".join(parts)


def reserve_refresh(
    ctx: AppContext, definition: Definition, client_id: str, account: str | None, name: str
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
    refused_until = ctx.inventory.count_token_call(
        budget_key(definition, client_id, account),
        now,
        lambda calls: next_call_at(calls, now, limits),
        keep_since=now - WINDOW,
    )
    if refused_until is None:
        return
    who = f" and {account}" if account else ""
    raise CallBudgetExhausted(
        f"{name!r} was not refreshed: {definition.title} allows {describe_limits(limits)} "
        f"for this app{who}, and a refresh now would pass that; it is possible from "
        f"{clock_text(refused_until, seconds=True)}Z",
        possible_at=refused_until,
        hint="run it again from then on (`tokenctl renew --all` from cron picks it up); the "
        "limit is counted for every token of the same app and account",
    )


def count_login(
    ctx: AppContext, definition: Definition, client_id: str, account: str | None
) -> None:
    """Count a login's code exchange (always: the user chose to log in now)."""
    limits = definition.limits
    if not limits.any:
        return
    now = ctx.now()
    ctx.inventory.count_token_call(
        budget_key(definition, client_id, account),
        now,
        lambda _calls: None,
        keep_since=now - WINDOW,
    )
