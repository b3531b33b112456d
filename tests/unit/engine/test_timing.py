"""Durations, send windows and quiet hours in the recipient's zone (engine/timing.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from cartflow.engine.timing import (
    DailySpan,
    SendRules,
    format_duration,
    parse_duration,
    zone_or_default,
)

NEW_YORK = ZoneInfo("America/New_York")
MOSCOW = ZoneInfo("Europe/Moscow")


def rules(windows: tuple[str, ...] = (), quiet: tuple[str, ...] = ("21:00-09:00",)) -> SendRules:
    return SendRules(
        windows=tuple(DailySpan.parse(w, wrap=False) for w in windows),
        quiet=tuple(DailySpan.parse(q, wrap=True) for q in quiet),
    )


#: The shipped SMS step: window 10:00-20:00 plus default quiet hours.
SMS = rules(("10:00-20:00",))
#: Push: default quiet hours only.
PUSH = rules()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- parse_duration / format_duration -------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("3h", timedelta(hours=3)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("45s", timedelta(seconds=45)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("0m", timedelta(0)),
        ("30M", timedelta(minutes=30)),
        (" 3h ", timedelta(hours=3)),
    ],
)
def test_parse_duration_reads_numbers_with_units(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "   ", "30", "30x", "1.5h", "m30", "30mm", "1h30", "abc", "h", "3 hours"]
)
def test_parse_duration_rejects_anything_else_with_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match=r"cannot read duration .*write a number and a unit"):
        parse_duration(text)


def test_parse_duration_rejects_negative_delays() -> None:
    with pytest.raises(ValueError, match="negative duration '-5m'; delays count forward"):
        parse_duration("-5m")


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0m"),
        (timedelta(minutes=30), "30m"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=7), "7d"),
        (timedelta(days=1, seconds=5), "1d5s"),
    ],
)
def test_format_duration_round_trips(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text
    assert parse_duration(format_duration(delta)) == delta


# -- DailySpan ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("20:00-10:00", "ends before it starts"),
        ("10:00-10:00", "is empty"),
        ("25:00-26:00", "no such time of day"),
        ("10:60-11:00", "no such time of day"),
        ("10-20", "write [days] HH:MM-HH:MM"),
        ("10:00", "write [days] HH:MM-HH:MM"),
        ("funday 10:00-20:00", "unknown day"),
        ("mon-xyz 10:00-20:00", "unknown day range"),
        ("late night", "write [days] HH:MM-HH:MM"),
    ],
)
def test_window_parse_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        DailySpan.parse(text, wrap=False)


def test_quiet_hours_may_wrap_midnight_but_windows_may_not() -> None:
    quiet = DailySpan.parse("21:00-09:00", wrap=True)
    assert (quiet.start, quiet.end) == (time(21), time(9))
    with pytest.raises(ValueError):
        DailySpan.parse("21:00-09:00", wrap=False)


def test_day_ranges_wrap_the_week() -> None:
    assert DailySpan.parse("fri-mon 10:00-20:00", wrap=False).days == {4, 5, 6, 0}
    assert DailySpan.parse("mon-fri 10:00-20:00", wrap=False).days == {0, 1, 2, 3, 4}
    assert DailySpan.parse("sat, sun 10:00-20:00", wrap=False).days == {5, 6}


def test_24_00_is_the_end_of_the_day() -> None:
    span = DailySpan.parse("20:00-24:00", wrap=False)
    assert span.contains(datetime(2026, 11, 22, 23, 59, 59))
    assert not span.contains(datetime(2026, 11, 22, 19, 59))


def test_window_is_half_open() -> None:
    span = DailySpan.parse("10:00-20:00", wrap=False)
    assert not span.contains(datetime(2026, 11, 22, 9, 59, 59))
    assert span.contains(datetime(2026, 11, 22, 10, 0))
    assert span.contains(datetime(2026, 11, 22, 19, 59, 59))
    assert not span.contains(datetime(2026, 11, 22, 20, 0))


def test_night_after_a_listed_day_belongs_to_that_day() -> None:
    # Given quiet hours only on Friday night
    span = DailySpan.parse("fri 22:00-06:00", wrap=True)
    # Then Friday 23:00 and Saturday 03:00 are quiet; Thursday night's tail and Saturday
    # night are not (2026-11-20 is a Friday)
    assert span.contains(datetime(2026, 11, 20, 23, 0))
    assert span.contains(datetime(2026, 11, 21, 3, 0))
    assert not span.contains(datetime(2026, 11, 20, 3, 0))
    assert not span.contains(datetime(2026, 11, 21, 23, 0))
    assert not span.contains(datetime(2026, 11, 21, 6, 0))


# -- SendRules in Moscow (no DST) ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("moment", "sms_opening", "push_opening"),
    [
        # 10:00 Moscow: both may go now
        (utc(2026, 11, 22, 7, 0), utc(2026, 11, 22, 7, 0), utc(2026, 11, 22, 7, 0)),
        # 09:30 Moscow: push now, SMS at 10:00
        (utc(2026, 11, 22, 6, 30), utc(2026, 11, 22, 7, 0), utc(2026, 11, 22, 6, 30)),
        # 20:30 Moscow: push now (quiet starts at 21:00), SMS tomorrow 10:00
        (utc(2026, 11, 22, 17, 30), utc(2026, 11, 23, 7, 0), utc(2026, 11, 22, 17, 30)),
        # 23:00 Moscow: push at 09:00, SMS at 10:00 tomorrow
        (utc(2026, 11, 22, 20, 0), utc(2026, 11, 23, 7, 0), utc(2026, 11, 23, 6, 0)),
        # 02:00 Moscow: the same morning
        (utc(2026, 11, 22, 23, 0), utc(2026, 11, 23, 7, 0), utc(2026, 11, 23, 6, 0)),
        # summer: Moscow stays UTC+3
        (utc(2026, 6, 15, 20, 0), utc(2026, 6, 16, 7, 0), utc(2026, 6, 16, 6, 0)),
    ],
)
def test_next_opening_in_moscow(
    moment: datetime, sms_opening: datetime, push_opening: datetime
) -> None:
    assert SMS.next_opening(moment, MOSCOW) == sms_opening
    assert PUSH.next_opening(moment, MOSCOW) == push_opening
    assert SMS.allows(sms_opening, MOSCOW) and PUSH.allows(push_opening, MOSCOW)


def test_quiet_hours_bounds_in_moscow() -> None:
    assert PUSH.allows(utc(2026, 11, 22, 6, 0), MOSCOW)  # 09:00 opens
    assert not PUSH.allows(utc(2026, 11, 22, 5, 59), MOSCOW)  # 08:59
    assert PUSH.allows(utc(2026, 11, 22, 17, 59), MOSCOW)  # 20:59
    assert not PUSH.allows(utc(2026, 11, 22, 18, 0), MOSCOW)  # 21:00 closes


def test_weekday_window_waits_over_the_weekend() -> None:
    # Given a weekdays-only window and Saturday noon in Moscow (2026-11-21)
    weekdays = rules(("mon-fri 10:00-20:00",))
    # Then the next opening is Monday 10:00
    assert weekdays.next_opening(utc(2026, 11, 21, 9, 0), MOSCOW) == utc(2026, 11, 23, 7, 0)


def test_window_inside_quiet_hours_never_opens() -> None:
    assert rules(("22:00-23:00",)).next_opening(utc(2026, 11, 22, 7, 0), MOSCOW) is None


def test_empty_rules_always_allow() -> None:
    assert SendRules().allows(utc(2026, 11, 22, 0, 0), MOSCOW)
    assert SendRules().next_opening(utc(2026, 11, 22, 0, 0), MOSCOW) == utc(2026, 11, 22, 0, 0)


# -- SendRules across DST in New York ------------------------------------------------------------
@pytest.mark.parametrize(
    ("moment", "sms_opening", "push_opening"),
    [
        # the day before spring forward: 00:00 EST → 10:00 EST / 09:00 EST
        (utc(2026, 3, 7, 5, 0), utc(2026, 3, 7, 15, 0), utc(2026, 3, 7, 14, 0)),
        # spring forward day (2026-03-08): 00:00 EST → 10:00 EDT / 09:00 EDT
        (utc(2026, 3, 8, 5, 0), utc(2026, 3, 8, 14, 0), utc(2026, 3, 8, 13, 0)),
        # the evening before spring forward, 22:00 EST, across the change
        (utc(2026, 3, 8, 3, 0), utc(2026, 3, 8, 14, 0), utc(2026, 3, 8, 13, 0)),
        # the day before fall back: 00:00 EDT → 10:00 EDT / 09:00 EDT
        (utc(2026, 10, 31, 4, 0), utc(2026, 10, 31, 14, 0), utc(2026, 10, 31, 13, 0)),
        # fall back day (2026-11-01): 00:00 EDT → 10:00 EST / 09:00 EST
        (utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 15, 0), utc(2026, 11, 1, 14, 0)),
        # the evening before fall back, 22:00 EDT, across the change
        (utc(2026, 11, 1, 2, 0), utc(2026, 11, 1, 15, 0), utc(2026, 11, 1, 14, 0)),
    ],
)
def test_next_opening_across_dst_in_new_york(
    moment: datetime, sms_opening: datetime, push_opening: datetime
) -> None:
    assert SMS.next_opening(moment, NEW_YORK) == sms_opening
    assert PUSH.next_opening(moment, NEW_YORK) == push_opening
    assert sms_opening.astimezone(NEW_YORK).time() == time(10, 0)
    assert push_opening.astimezone(NEW_YORK).time() == time(9, 0)


def test_window_opening_in_the_repeated_hour_takes_the_first_occurrence() -> None:
    # Given a window opening at 01:30, which happens twice on 2026-11-01 in New York
    early = rules(("01:30-05:00",), quiet=())
    # Then it opens at the first 01:30 (EDT, 05:30 UTC)
    assert early.next_opening(utc(2026, 11, 1, 4, 0), NEW_YORK) == utc(2026, 11, 1, 5, 30)


def test_window_opening_in_the_spring_gap_moves_past_the_gap() -> None:
    # Given a window opening at 02:30, which does not exist on 2026-03-08 in New York
    early = rules(("02:30-05:00",), quiet=())
    # When asked at 00:00 EST
    opening = early.next_opening(utc(2026, 3, 8, 5, 0), NEW_YORK)
    # Then it opens after the gap, on daylight time, inside the window
    assert opening is not None
    local = opening.astimezone(NEW_YORK)
    assert local.utcoffset() == timedelta(hours=-4)
    assert time(3, 0) <= local.time() <= time(3, 30)
    assert early.allows(opening, NEW_YORK)


def test_window_opening_in_the_spring_gap_opens_at_the_transition() -> None:
    early = rules(("02:30-05:00",), quiet=())
    assert early.next_opening(utc(2026, 3, 8, 5, 0), NEW_YORK) == utc(2026, 3, 8, 7, 0)


def test_quiet_hours_on_dst_nights_still_cover_local_night() -> None:
    # Every 15 minutes over both DST weekends, push is allowed exactly when the local
    # wall clock is outside 21:00-09:00
    for start in (utc(2026, 3, 7, 0, 0), utc(2026, 10, 31, 0, 0)):
        for quarter in range(4 * 72):
            moment = start + timedelta(minutes=15 * quarter)
            local = moment.astimezone(NEW_YORK).time()
            expected = time(9) <= local < time(21)
            assert PUSH.allows(moment, NEW_YORK) is expected, moment


def test_zone_or_default_falls_back_on_unknown_names() -> None:
    assert zone_or_default("Asia/Tokyo", "Europe/Moscow").key == "Asia/Tokyo"
    assert zone_or_default(None, "Europe/Moscow").key == "Europe/Moscow"
    assert zone_or_default("Mars/Olympus", "Europe/Moscow").key == "Europe/Moscow"
