"""Durations, send windows and quiet hours, in the recipient's own time zone.

All arithmetic on wall-clock times goes through :mod:`zoneinfo`, so DST changes are
handled: a window "10:00-20:00" opens at 10:00 local time on the day of a change too,
and a time that does not exist (02:30 on a spring-forward night) is moved past the gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_DURATION = re.compile(r"(\d+)\s*(w|d|h|m|s)")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Quiet hours the engine always enforces for push, SMS and messengers (architecture §5).
DEFAULT_QUIET_HOURS = "21:00-09:00"
#: Channels quiet hours apply to by default; email has none.
QUIET_CHANNELS = frozenset({"push", "sms", "messenger"})


def parse_duration(text: str) -> timedelta:
    """``"30m"``, ``"3h"``, ``"2d"``, ``"1h30m"``, ``"0m"`` → timedelta.

    Raises ValueError with a hint for anything else (a negative delay included).
    """
    raw = str(text).strip().lower()
    if raw.startswith("-"):
        raise ValueError(f"negative duration {text!r}; delays count forward, e.g. '30m'")
    pos, total = 0, 0
    for match in _DURATION.finditer(raw):
        if match.start() != pos or raw[pos : match.start()].strip():
            break
        total += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
        while pos < len(raw) and raw[pos] == " ":
            pos += 1
    if pos != len(raw) or not raw:
        raise ValueError(
            f"cannot read duration {text!r}; write a number and a unit: 30m, 3h, 2d, 1w, 1h30m"
        )
    return timedelta(seconds=total)


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0m"
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


def _parse_clock(text: str) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match:
        raise ValueError(f"cannot read time {text!r}; write HH:MM, e.g. 09:30")
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour == 24 and minute == 0:
        return time.max
    if hour > 23 or minute > 59:
        raise ValueError(f"no such time of day {text!r}")
    return time(hour, minute)


def _parse_days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.split(","):
        part = part.strip().lower()
        if "-" in part:
            first, last = (p.strip()[:3] for p in part.split("-", 1))
            if first not in DAY_NAMES or last not in DAY_NAMES:
                raise ValueError(f"unknown day range {part!r}; use mon..sun, e.g. mon-fri")
            a, b = DAY_NAMES.index(first), DAY_NAMES.index(last)
            span = range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)]
            days.update(span)
        else:
            if part[:3] not in DAY_NAMES:
                raise ValueError(f"unknown day {part!r}; use mon, tue, wed, thu, fri, sat, sun")
            days.add(DAY_NAMES.index(part[:3]))
    return frozenset(days)


@dataclass(frozen=True)
class DailySpan:
    """``[days] HH:MM-HH:MM`` in local time; ``end < start`` wraps past midnight
    (only allowed when ``wrap`` is True, as for quiet hours)."""

    start: time
    end: time
    days: frozenset[int] = field(default_factory=lambda: frozenset(range(7)))
    text: str = ""

    @classmethod
    def parse(cls, text: str, *, wrap: bool) -> DailySpan:
        # "10:00 - 20:00" reads like "10:00-20:00"; the hours are what follows the days
        raw = re.sub(r"\s*-\s*(?=\d)", "-", str(text).strip())
        raw = re.sub(r"(?<=\d)\s*-\s*", "-", raw)
        days: frozenset[int] = frozenset(range(7))
        hours = re.search(r"\d{1,2}:\d{2}-\d{1,2}:\d{2}$", raw)
        if hours is None:
            raise ValueError(
                f"cannot read {text!r}; write [days] HH:MM-HH:MM, e.g. '21:00-09:00' or "
                "'mon-fri 10:00-20:00'"
            )
        raw_hours = hours.group(0)
        day_part = raw[: hours.start()].strip()
        if day_part:
            days = _parse_days(day_part)
        a, b = raw_hours.split("-", 1)
        start, end = _parse_clock(a), _parse_clock(b)
        if start == end:
            raise ValueError(f"{text!r} is empty: start and end are the same time")
        if end < start and not wrap:
            raise ValueError(
                f"window {text!r} ends before it starts; a send window must lie within "
                "one day (use two windows to span midnight)"
            )
        return cls(start=start, end=end, days=days, text=str(text))

    def contains(self, local: datetime) -> bool:
        t = local.time().replace(tzinfo=None)
        weekday = local.weekday()
        if self.start < self.end:
            return weekday in self.days and self.start <= t < self.end
        # wraps midnight: the evening part belongs to today, the morning part to yesterday
        if t >= self.start:
            return weekday in self.days
        if t < self.end:
            return (weekday - 1) % 7 in self.days
        return False

    def boundaries(self, day: date) -> tuple[time, time]:
        return self.start, self.end


@dataclass(frozen=True)
class SendRules:
    """Where a send may happen: inside any ``windows`` (if given) and outside every
    ``quiet`` span, in the recipient's time zone."""

    windows: tuple[DailySpan, ...] = ()
    quiet: tuple[DailySpan, ...] = ()

    def allows(self, moment: datetime, zone: ZoneInfo) -> bool:
        local = moment.astimezone(zone)
        if self.windows and not any(w.contains(local) for w in self.windows):
            return False
        return not any(q.contains(local) for q in self.quiet)

    def next_opening(
        self, moment: datetime, zone: ZoneInfo, horizon_days: int = 8
    ) -> datetime | None:
        """The first moment at or after ``moment`` when a send is allowed, or None if
        none within ``horizon_days`` (a window the step can never hit)."""
        if self.allows(moment, zone):
            return moment
        local_day = moment.astimezone(zone).date()
        candidates: list[datetime] = []
        for offset in range(-1, horizon_days + 1):
            day = local_day + timedelta(days=offset)
            for span in self.windows:
                candidates.append(_local_to_utc(day, span.start, zone))
            for span in self.quiet:
                if span.end != time.max:
                    candidates.append(_local_to_utc(day, span.end, zone))
        for candidate in sorted(c for c in candidates if c > moment):
            if self.allows(candidate, zone):
                return candidate
        return None


def _local_to_utc(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """Wall-clock ``day wall`` in ``zone`` as UTC. A time inside a DST gap does not exist;
    the first real instant after it is the transition (02:30 on a spring-forward night in
    New York → 03:00 EDT, the moment the clocks jump)."""
    local = datetime.combine(day, wall, tzinfo=zone)
    as_utc = local.astimezone(UTC)
    roundtrip = as_utc.astimezone(zone)
    if roundtrip.replace(tzinfo=None) == local.replace(tzinfo=None):
        return as_utc
    # The two readings of a nonexistent time bracket the transition: find it by halving.
    low, high = sorted((local.replace(fold=1).astimezone(UTC), as_utc))
    offset_before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset_before:
            low = middle
        else:
            high = middle
    return (
        high.replace(microsecond=0)
        if high.microsecond == 0
        else high + timedelta(microseconds=-high.microsecond, seconds=1)
    )


def zone_or_default(name: str | None, default: str) -> ZoneInfo:
    try:
        return ZoneInfo(name) if name else ZoneInfo(default)
    except Exception:
        return ZoneInfo(default)
