"""Durations and times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenctl.errors import UsageError
from tokenctl.timeutil import (
    EARLIEST,
    LATEST,
    MAX_DURATION,
    add_checked,
    format_duration,
    from_iso,
    parse_duration,
    parse_time,
    relative,
    to_iso,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("12h", 43200),
        ("7d", 604800),
        ("2w", 1209600),
        ("1h30m", 5400),
        (" 2D ", 172800),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "7", "d7", "7x", "1h 30m", "-5m", "1.5h", "7dd"])
def test_parse_duration_rejects(text):
    with pytest.raises(UsageError):
        parse_duration(text)


@given(st.integers(min_value=1, max_value=10**9))
def test_format_then_parse_round_trips(seconds):
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


@given(st.text(max_size=12))
def test_parse_duration_never_raises_anything_but_usage_error(text):
    try:
        result = parse_duration(text)
    except UsageError:
        return
    assert result >= timedelta(0)


def test_parse_time_defaults_to_utc_and_converts_offsets():
    assert parse_time("2027-01-31") == datetime(2027, 1, 31, tzinfo=UTC)
    assert parse_time("2027-01-31T12:00:00+01:00") == datetime(2027, 1, 31, 11, tzinfo=UTC)
    assert to_iso(parse_time("2027-01-31T12:00:00.5Z")) == "2027-01-31T12:00:00Z"
    with pytest.raises(UsageError):
        parse_time("tomorrow")


def test_relative():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert relative(now + timedelta(days=3, hours=1), now) == "in 3 days"
    assert relative(now - timedelta(hours=2), now) == "2 hours ago"
    assert relative(now + timedelta(seconds=29), now) == "now"
    assert relative(now + timedelta(days=1), now) == "in 1 day"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=5) - timedelta(seconds=1), "in 5 days"),  # --expires-in 5d, 1 s later
        (timedelta(days=4, hours=12), "in 5 days"),  # halves round up
        (timedelta(days=4, hours=11, minutes=59), "in 4 days"),
        (timedelta(hours=3) - timedelta(minutes=10), "in 3 hours"),
        (timedelta(hours=23, minutes=50), "in 1 day"),  # rounding reaches the next unit
        (timedelta(minutes=59, seconds=40), "in 1 hour"),
        (timedelta(days=6, hours=13), "in 1 week"),
        (timedelta(days=29), "in 4 weeks"),
        (timedelta(days=30), "in 1 month"),
        (timedelta(days=350), "in 1 year"),  # 12 months read as a year
        (timedelta(days=700), "in 2 years"),
        (timedelta(seconds=30), "in 1 minute"),
        (-timedelta(hours=1, minutes=31), "2 hours ago"),
        (-timedelta(seconds=29), "now"),
    ],
)
def test_relative_rounds_as_people_read(delta, text):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert relative(now + delta, now) == text


_UNIT_SECONDS_OF = {
    "minute": 60,
    "hour": 3_600,
    "day": 86_400,
    "week": 604_800,
    "month": 2_592_000,
    "year": 31_536_000,
}


def _said(text: str) -> tuple[float, int]:
    """(signed seconds the text says, seconds of its unit) for what `relative` writes."""
    if text == "now":
        return 0.0, 60
    future = text.startswith("in ")
    count, unit = text.removeprefix("in ").removesuffix(" ago").split(" ")
    size = _UNIT_SECONDS_OF[unit.removesuffix("s")]
    assert (int(count) == 1) == (not unit.endswith("s"))  # "1 day", "2 days"
    return (1 if future else -1) * int(count) * size, size


_DISTANCES = st.floats(min_value=-5e9, max_value=5e9, allow_nan=False)


@given(_DISTANCES)
def test_relative_is_never_off_by_more_than_half_its_unit(seconds):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    said, unit = _said(relative(now + timedelta(seconds=seconds), now))
    assert abs(said - seconds) <= unit / 2 + 1e-6


@given(_DISTANCES, _DISTANCES)
def test_relative_is_monotonic(first, second):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    low, high = sorted((first, second))
    said_low = _said(relative(now + timedelta(seconds=low), now))[0]
    said_high = _said(relative(now + timedelta(seconds=high), now))[0]
    assert said_low <= said_high


def _to_iso_before(moment: datetime | None) -> str | None:
    """to_iso as it was before it was made faster: the reference for its output.

    With one correction: years before 1000 get their four digits (strftime drops them).
    """
    if moment is None:
        return None
    in_utc = moment.astimezone(UTC).replace(microsecond=0)
    return f"{in_utc.year:04d}" + in_utc.strftime("-%m-%dT%H:%M:%SZ")


def _outcome(function, moment):
    try:
        return function(moment)
    except Exception as error:  # the same failure counts as the same outcome
        return type(error)


_ZONES = st.one_of(
    st.none(),  # naive: taken as local time by astimezone
    st.just(UTC),
    st.integers(-1439, 1439).map(lambda minutes: timezone(timedelta(minutes=minutes))),
    st.timezones(),  # zoneinfo zones, with DST gaps and folds
)


@given(st.datetimes(timezones=_ZONES))
def test_to_iso_matches_the_former_implementation(moment):
    assert _outcome(to_iso, moment) == _outcome(_to_iso_before, moment)


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(1100, 1, 1), timezones=_ZONES))
def test_to_iso_matches_the_former_implementation_for_early_years(moment):
    assert _outcome(to_iso, moment) == _outcome(_to_iso_before, moment)


def test_to_iso_examples():
    assert to_iso(None) is None
    assert to_iso(datetime(2027, 1, 31, 12, 0, 0, 999_999, tzinfo=UTC)) == "2027-01-31T12:00:00Z"
    plus_one = timezone(timedelta(hours=1))
    assert to_iso(datetime(2027, 1, 1, 0, 30, tzinfo=plus_one)) == "2026-12-31T23:30:00Z"
    early = datetime(999, 5, 6, tzinfo=UTC)
    assert to_iso(early) == "0999-05-06T00:00:00Z"
    assert to_iso(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"


@given(st.datetimes(timezones=st.just(UTC)))
def test_to_iso_then_from_iso_round_trips_every_time(moment):
    assert from_iso(to_iso(moment)) == moment.replace(microsecond=0)


@given(
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(999, 12, 31), timezones=st.just(UTC)
    )
)
def test_from_iso_reads_the_short_years_older_versions_wrote(moment):
    written = moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # what to_iso wrote before: "999-..."
    assert from_iso(written) == moment.replace(microsecond=0)


def test_from_iso_still_refuses_what_is_no_time():
    for text in ("soon", "12-31", "99999-01-01T00:00:00Z", ""):
        with pytest.raises(ValueError):
            from_iso(text)


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+01:00",  # before datetime.min in UTC
        "9999-12-31T23:59:59-01:00",  # after datetime.max in UTC
        "0999-12-31",
        "0001-01-01",
    ],
)
def test_parse_time_refuses_times_outside_the_stored_range(text):
    with pytest.raises(UsageError, match="out of range"):
        parse_time(text)


def test_parse_time_accepts_the_edges_of_the_range():
    assert parse_time("1000-01-01") == EARLIEST
    assert parse_time("1000-01-01T00:30:00+00:30") == EARLIEST
    assert parse_time("9999-12-31T23:59:59Z") == datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


@given(st.datetimes(timezones=_ZONES))
def test_parse_time_never_raises_anything_but_usage_error_and_round_trips(moment):
    try:
        parsed = parse_time(moment.isoformat())
    except UsageError:
        return
    assert EARLIEST <= parsed <= LATEST
    assert from_iso(to_iso(parsed)) == parsed.replace(microsecond=0)


@pytest.mark.parametrize("text", ["99999999999999d", "99999999999999999999d", "36501d", "5215w"])
def test_parse_duration_refuses_what_is_too_long(text):
    with pytest.raises(UsageError, match="the longest is 36500d"):
        parse_duration(text)


def test_parse_duration_accepts_the_longest():
    assert parse_duration("36500d") == MAX_DURATION
    assert parse_duration("0000000000000000000000001s") == timedelta(seconds=1)


@given(st.from_regex(r"\A(\d{1,40}[smhdw]){1,3}\Z"))
def test_parse_duration_of_any_size_never_raises_anything_but_usage_error(text):
    try:
        result = parse_duration(text)
    except UsageError as error:
        assert "the longest is 36500d" in error.message
        return
    assert timedelta(0) <= result <= MAX_DURATION


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.timedeltas(min_value=timedelta.min, max_value=timedelta.max),
)
def test_add_checked_never_overflows(moment, delta):
    result = add_checked(moment, delta)
    assert result is None or EARLIEST <= result <= LATEST


def test_clock_text_writes_four_digit_years() -> None:
    from tokenctl.timeutil import clock_text

    moment = datetime(999, 12, 31, 7, 5, 9, tzinfo=UTC)
    assert clock_text(moment) == "0999-12-31 07:05"
    assert clock_text(moment, seconds=True) == "0999-12-31 07:05:09"
    assert clock_text(datetime(2027, 1, 31, 12, 0, tzinfo=UTC)) == "2027-01-31 12:00"
