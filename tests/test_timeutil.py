"""Durations and times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenctl.errors import UsageError
from tokenctl.timeutil import format_duration, parse_duration, parse_time, relative, to_iso


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
    assert relative(now + timedelta(seconds=30), now) == "now"
    assert relative(now + timedelta(days=1), now) == "in 1 day"
