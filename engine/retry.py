"""When a step refused for now by its provider is tried again (architecture §5).

A ``retryable`` answer (429, 503, a connection refused before the request left) puts the
delivery back to ``pending`` and the step's timer later; every guard runs again then, so
quiet hours, caps and an order placed meanwhile still hold. The wait:

* the provider's ``Retry-After`` when it gives one — never earlier than it asks;
* otherwise exponential backoff: ``wait × factor^(n-1)`` after the n-th attempt, at most
  ``max_wait``, plus up to ``jitter`` of it (spread by the delivery's id, so the same
  delivery always waits the same and a burst of refusals does not come back at once).

After ``attempts`` tries the delivery fails (``failed``) and the journey goes on. The
defaults (3 attempts, 5 minutes, ×2, at most 1 hour, +10%) hold for every provider; a
provider's ``retry:`` in ``scenarios.yaml`` overrides them::

    providers:
      sms: {type: webhook, url: "…", retry: {attempts: 5, wait: 1m, max_wait: 30m}}
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from pydantic import Field, model_validator

from cartflow.engine.scenario.value_types import Duration, Strict


class RetryPolicy(Strict):
    """How often and how long to wait before trying a refused send again."""

    attempts: int = Field(
        default=3, ge=1, le=20, description="Tries in all, the first included.", examples=[3]
    )
    wait: Duration = Field(
        default=timedelta(minutes=5),
        description="Wait after the first refusal when the provider does not say.",
        examples=["5m"],
    )
    factor: float = Field(
        default=2.0, ge=1.0, le=10.0, description="Each later wait is this many times longer."
    )
    max_wait: Duration = Field(
        default=timedelta(hours=1), description="The longest backoff wait.", examples=["1h"]
    )
    jitter: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Up to this share of the wait is added."
    )

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.max_wait < self.wait:
            raise ValueError("'max_wait' must be at least 'wait'")
        return self

    def wait_after(
        self, attempt: int, retry_after: float | None = None, key: str = ""
    ) -> timedelta | None:
        """How long to wait after the ``attempt``-th try (1-based) was refused for now;
        None when that was the last try."""
        if attempt >= self.attempts:
            return None
        if retry_after is not None and retry_after > 0:
            return timedelta(seconds=retry_after)
        # in seconds, capped before it becomes a timedelta (factor^19 overflows one)
        base = min(
            self.wait.total_seconds() * self.factor ** (attempt - 1), self.max_wait.total_seconds()
        )
        extra = base * self.jitter * _spread(f"{key}:{attempt}")
        return timedelta(seconds=base + round(extra))


def _spread(key: str) -> float:
    """A number in [0, 1) fixed by ``key``."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32


#: What every provider gets unless its settings say otherwise.
DEFAULT_RETRY = RetryPolicy()
