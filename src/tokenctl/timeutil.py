"""Durations (``90s``, ``12h``, ``2w``), ISO 8601 times and human-friendly renderings."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from tokenctl.errors import UsageError

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+)([smhdw])")

#: The longest duration tokenctl accepts (100 years): longer than any token lives or any
#: window needs, and short enough that adding it to any time tokenctl stores stays a time.
MAX_DURATION = timedelta(days=36500)
#: The times tokenctl accepts and stores: four-digit years, as ISO 8601 and RFC 3339 write
#: them. An expiry outside them is a typo or a provider's nonsense, never a real date.
EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
_TIME_HINT = "write an ISO 8601 time such as 2027-01-31 or 2027-01-31T12:00:00+01:00"
#: Older versions wrote years before 1000 with fewer than four digits ("999-12-31T...").
_SHORT_YEAR = re.compile(r"(\d{1,3})(?=-\d\d-\d\d)")


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``30m``, ``12h``, ``7d``, ``2w`` or a sum such as ``1h30m``."""
    cleaned = text.strip().lower()
    if not cleaned:
        raise UsageError("empty duration", hint="write a duration like 90s, 30m, 12h, 7d or 2w")
    position = 0
    seconds = 0
    for match in _DURATION.finditer(cleaned):
        if match.start() != position:
            break
        digits = match.group(1).lstrip("0") or "0"
        # Checked before int(): a long enough number would overflow timedelta (or int()).
        if len(digits) > 12:
            raise _too_long(text)
        seconds += int(digits) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(cleaned):
        raise UsageError(
            f"invalid duration {text!r}",
            hint="write a duration like 90s, 30m, 12h, 7d or 2w (sums such as 1h30m work too)",
        )
    if seconds > MAX_DURATION.total_seconds():
        raise _too_long(text)
    return timedelta(seconds=seconds)


def _too_long(text: str) -> UsageError:
    return UsageError(
        f"duration {text!r} is too long: the longest is 36500d (100 years)",
        hint="write a duration of at most 36500d (5214w)",
    )


def add_checked(moment: datetime, delta: timedelta) -> datetime | None:
    """``moment + delta``, or ``None`` when that lies outside the times tokenctl stores.

    Every sum of a time and a duration from a user, a file or a provider goes through
    here, so none can raise OverflowError; each caller says what ``None`` means to it.
    """
    try:
        later = moment + delta
    except OverflowError:
        return None
    return later if EARLIEST <= later <= LATEST else None


def format_duration(delta: timedelta) -> str:
    """Render a duration in the notation :func:`parse_duration` reads, largest units first."""
    remaining = int(delta.total_seconds())
    if remaining <= 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        count, remaining = divmod(remaining, _UNIT_SECONDS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 date or time; a time without offset is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"invalid time {text!r}", hint=_TIME_HINT) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        in_utc = parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before datetime.min in UTC
        in_utc = None
    if in_utc is None or not EARLIEST <= in_utc <= LATEST:
        raise UsageError(
            f"time {text!r} is out of range: times must lie between "
            "1000-01-01T00:00:00Z and 9999-12-31T23:59:59Z",
            hint=_TIME_HINT,
        )
    return in_utc


def to_iso(moment: datetime | None) -> str | None:
    """Render an aware time as ISO 8601 UTC with a ``Z`` suffix, seconds precision."""
    if moment is None:
        return None
    # Hot: `list --json` renders ~9 times per token. Formatting the fields is ~5x faster
    # than astimezone + replace + strftime, with the same text (tests/test_timeutil.py).
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # Always four digits: strftime writes years before 1000 without leading zeros, which
    # fromisoformat (and RFC 3339) refuses.
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (  # noqa: UP031 - faster than the alternatives
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
    )


def clock_text(moment: datetime, *, seconds: bool = False) -> str:
    """A time as people read it in tables and messages: ``2027-01-31 12:00`` (UTC as given).

    Four-digit years always, like :func:`to_iso` (strftime writes ``999-12-31``).
    """
    text = "%04d-%02d-%02d %02d:%02d" % (  # noqa: UP031 - as in to_iso
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
    )
    return f"{text}:{moment.second:02d}" if seconds else text


def from_iso(text: str | None) -> datetime | None:
    """Read back a time written by :func:`to_iso` (or any ISO 8601 time).

    Also reads what older versions wrote for years before 1000 (``999-12-31T...Z``), so
    such a stored row cannot make the inventory unreadable.
    """
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        short = _SHORT_YEAR.match(text)
        if short is None:
            raise
        parsed = datetime.fromisoformat(short.group(1).zfill(4) + text[short.end() :])
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


#: The units of :func:`relative`: name, length in seconds, and the rounded count that
#: rolls over into the next unit (24 hours read as "1 day"). Four weeks stay weeks: a month
#: (30 days) starts above them; twelve months read as "1 year".
_RELATIVE_UNITS: tuple[tuple[str, int, int | None], ...] = (
    ("minute", 60, 60),
    ("hour", 3_600, 24),
    ("day", 86_400, 7),
    ("week", 604_800, None),
    ("month", 2_592_000, 12),
    ("year", 31_536_000, None),
)


def relative(moment: datetime, now: datetime) -> str:
    """Say how far a moment is from now, rounded as people read it.

    ``in 5 days`` for 4 days 23 hours, ``2 hours ago``, ``now`` (under half a minute).
    The count is rounded to the nearest whole unit (halves up), in the largest unit the
    distance reaches; when rounding reaches the next unit it says that one
    (23 h 50 min is ``in 1 day``). So the text is never off by more than half its unit.
    """
    seconds = (moment - now).total_seconds()
    future = seconds >= 0
    seconds = abs(seconds)
    index = 0
    while index + 1 < len(_RELATIVE_UNITS) and seconds >= _RELATIVE_UNITS[index + 1][1]:
        index += 1
    unit, size, rollover = _RELATIVE_UNITS[index]
    count = math.floor(seconds / size + 0.5)
    if count == 0:
        return "now"
    if rollover is not None and count >= rollover:
        unit, count = _RELATIVE_UNITS[index + 1][0], 1
    label = f"{count} {unit}{'' if count == 1 else 's'}"
    return f"in {label}" if future else f"{label} ago"
