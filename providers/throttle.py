"""Rate limits and circuit breakers per provider, shared by every worker process.

One :class:`Throttle` layer sits in front of the providers (:mod:`cartflow.providers.layers`).
Its state lives in a :class:`Store` — Redis in production, so that every worker process
of every machine counts against the same limit and sees the same open breaker; the
process's memory in embedded mode and tests.

**Rate limit** (``rate_limit: 20/s`` or ``600/m`` on a channel's provider): Dramatiq's
sliding-window limiter (:class:`dramatiq.rate_limits.WindowRateLimiter`) on the same
Redis. A send over the limit waits for room (at most :attr:`Throttle.max_wait`), then —
if there is still none — comes back ``retryable`` with ``Retry-After: 1``.

**Circuit breaker** (``breaker: {failures: 5, within: 1m, open_for: 30s}``, on by
default): answers that say the vendor is not working — ``retryable`` (5xx, 429,
connection refused) and ``unknown`` (timeouts) — are counted; ``failures`` of them within
``within`` open the breaker for ``open_for``. While it is open the engine does not burn
steps on it: the channel choice skips that channel (:meth:`Throttle.paused_for`) and the
step goes by its fallback, or waits until the breaker closes. The first send after that
is the probe: a failure opens it again at once (the count has not expired), a success
(accepted, or a refusal about the message itself) clears the count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from dramatiq.rate_limits import RateLimiterBackend, WindowRateLimiter

from cartflow.engine.sending import Message, SendResult
from cartflow.providers.layers import Send

log = structlog.get_logger("cartflow.providers")

#: Answers that count against a provider's breaker: it is not working right now.
FAILING = ("retryable", "unknown")
PREFIX = "cartflow:breaker"


class Store(Protocol):
    """Where breaker state lives (shared by every process that uses the same store)."""

    def count(self, key: str, ttl: float) -> int:
        """Add one to ``key`` (created with ``ttl`` seconds to live); the new value."""
        ...

    def flag(self, key: str, ttl: float) -> None:
        """Set ``key`` for ``ttl`` seconds."""
        ...

    def remaining(self, key: str) -> float | None:
        """Seconds ``key`` still lives; None when it is not set."""
        ...

    def clear(self, key: str) -> None: ...


class MemoryStore:
    """A :class:`Store` in this process (embedded mode, tests)."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._values: dict[str, tuple[int, float]] = {}

    def _live(self, key: str) -> tuple[int, float] | None:
        value = self._values.get(key)
        if value is not None and value[1] <= self._now():
            del self._values[key]
            return None
        return value

    def count(self, key: str, ttl: float) -> int:
        with self._lock:
            value = self._live(key)
            n, until = (value[0] + 1, value[1]) if value else (1, self._now() + ttl)
            self._values[key] = (n, until)
            return n

    def flag(self, key: str, ttl: float) -> None:
        with self._lock:
            self._values[key] = (1, self._now() + ttl)

    def remaining(self, key: str) -> float | None:
        with self._lock:
            value = self._live(key)
            return value[1] - self._now() if value else None

    def clear(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)


class RedisStore:
    """A :class:`Store` on Redis: one state for every worker process."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def count(self, key: str, ttl: float) -> int:
        pipe = self.client.pipeline()
        pipe.incr(key)
        pipe.pexpire(key, max(1, int(ttl * 1000)), nx=True)
        return int(pipe.execute()[0])

    def flag(self, key: str, ttl: float) -> None:
        self.client.set(key, 1, px=max(1, int(ttl * 1000)))

    def remaining(self, key: str) -> float | None:
        millis = self.client.pttl(key)
        return millis / 1000 if millis is not None and millis > 0 else None

    def clear(self, key: str) -> None:
        self.client.delete(key)


@dataclass(frozen=True)
class Policy:
    """What holds for one channel's provider: its name, limit and breaker."""

    provider: str
    #: Where its state is kept (the channel and the provider's type).
    key: str
    #: Sends per window, and the window in seconds (None: no limit).
    rate: tuple[int, int] | None
    failures: int
    within: float
    open_for: float


class Throttle:
    """The layer: rate limit, then send, then count the answer against the breaker."""

    def __init__(
        self,
        policy_for: Callable[[str], Policy | None],
        store: Store,
        limiter_backend: RateLimiterBackend,
        *,
        max_wait: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy_for = policy_for
        self.store = store
        self.backend = limiter_backend
        #: How long a send waits for room under its rate limit.
        self.max_wait = max_wait
        self._sleep = sleep
        self._limiters: dict[tuple[str, int, int], WindowRateLimiter] = {}
        self._lock = threading.Lock()

    def send(self, message: Message, next: Send) -> SendResult:
        policy = self.policy_for(message.channel)
        if policy is None:
            return next(message)
        try:
            held = self._held(policy)
        except Exception as exc:  # the store is unreachable: not sent (fail closed), retried
            log.warning("throttle_unavailable", provider=policy.provider, error=type(exc).__name__)
            return SendResult.retryable(policy.provider, "rate limit state unavailable", 5.0)
        if held is not None:
            return held
        result = next(message)
        try:
            self._count(policy, result)
        except Exception as exc:  # the answer stands; only the breaker's count is lost
            log.warning("breaker_not_counted", provider=policy.provider, error=type(exc).__name__)
        return result

    def _held(self, policy: Policy) -> SendResult | None:
        """Why the send may not go now (breaker open, no room under the limit), or None."""
        open_for = self.store.remaining(_open_key(policy.key))
        if open_for is not None:  # opened after the guards looked: not sent, tried later
            reason = f"circuit open: {policy.provider} is failing"
            return SendResult.retryable(policy.provider, reason, retry_after=open_for)
        if policy.rate is not None and not self._room(policy):
            limit, window = policy.rate
            reason = f"rate limit {limit}/{window}s reached"
            return SendResult.retryable(policy.provider, reason, retry_after=1.0)
        return None

    def paused_for(self, channel: str) -> float | None:
        """Seconds until the breaker of ``channel``'s provider closes; None: it is closed
        (or its state cannot be read: then the send itself is held, see :meth:`send`)."""
        policy = self.policy_for(channel)
        if policy is None:
            return None
        try:
            return self.store.remaining(_open_key(policy.key))
        except Exception:
            return None

    def _room(self, policy: Policy) -> bool:
        assert policy.rate is not None
        limiter = self._limiter(policy.key, *policy.rate)
        deadline = time.monotonic() + self.max_wait
        while True:
            with limiter.acquire(raise_on_failure=False) as acquired:
                if acquired:
                    return True
            if time.monotonic() >= deadline:
                return False
            self._sleep(0.02)

    def _limiter(self, where: str, limit: int, window: int) -> WindowRateLimiter:
        key = (where, limit, window)
        with self._lock:
            if key not in self._limiters:
                name = f"cartflow:rate:{where}"
                self._limiters[key] = WindowRateLimiter(  # type: ignore[no-untyped-call]
                    self.backend, name, limit=limit, window=window
                )
            return self._limiters[key]

    def _count(self, policy: Policy, result: SendResult) -> None:
        fails = f"{PREFIX}:{policy.key}:failures"
        if result.status not in FAILING:
            self.store.clear(fails)
            return
        if self.store.count(fails, policy.within) >= policy.failures:
            if self.store.remaining(_open_key(policy.key)) is None:
                log.warning("breaker_opened", provider=policy.provider, seconds=policy.open_for)
            self.store.flag(_open_key(policy.key), policy.open_for)


def _open_key(provider: str) -> str:
    return f"{PREFIX}:{provider}:open"
