"""Where the engine reads time — and the only place.

The engine never calls ``datetime.now()``: it asks its :class:`Clock`. Production uses
:class:`SystemClock`; tests and ``cartflow simulate`` use :class:`SimulatedClock`, which
only moves when told to; the embedded demo uses :class:`AcceleratedClock`, real time
sped up by a factor.

All clocks return timezone-aware UTC datetimes.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the engine what time it is (aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that stands still until :meth:`advance` or :meth:`set` moves it.

    Thread-safe; it never goes backwards through :meth:`set` unless ``allow_backwards``.
    """

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime, *, allow_backwards: bool = False) -> datetime:
        moment = as_utc(moment)
        with self._lock:
            if moment < self._now and not allow_backwards:
                raise ValueError(f"clock cannot go back from {self._now} to {moment}")
            self._now = moment
            return self._now


class AcceleratedClock:
    """Real time, sped up ``speed`` times, starting at ``start``.

    One real second is ``speed`` simulated seconds: the embedded demo runs two days of a
    shop in under a minute with ``speed=3600``.
    """

    def __init__(self, start: datetime, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start = as_utc(start)
        self.speed = speed
        self._origin = time.monotonic()

    def now(self) -> datetime:
        elapsed = time.monotonic() - self._origin
        return self.start + timedelta(seconds=elapsed * self.speed)

    def restart(self) -> None:
        """Start counting again from ``start`` (after a slow set-up, say)."""
        self._origin = time.monotonic()

    def real_seconds(self, delta: timedelta) -> float:
        """How long ``delta`` of simulated time takes in real seconds."""
        return delta.total_seconds() / self.speed


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` as aware UTC; a naive datetime is taken to be UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
