"""What every HTTP provider reads the same way from an answer, or from its absence.

* :func:`retry_after` — a ``Retry-After`` in seconds (a number ≥ 0), else None;
* :func:`transport_failure` — a request that failed in transport: **retryable** when it
  never left (connection refused, connect timeout, no free connection in the pool),
  **unknown** once it may have (a read timeout, a connection dropped after the body):
  the vendor may have the message, and sending again could reach the shopper twice.
"""

from __future__ import annotations

import math

import httpx

from cartflow.engine.sending import SendResult

#: Transport failures that prove the request never reached the vendor.
NEVER_LEFT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def retry_after(response: httpx.Response) -> float | None:
    """The answer's ``Retry-After`` in seconds, or None (absent, a date, or nonsense)."""
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def transport_failure(provider: str, exc: httpx.HTTPError) -> SendResult:
    """What a request that failed in transport means for the send."""
    if isinstance(exc, NEVER_LEFT):
        return SendResult.retryable(provider, f"{type(exc).__name__}: nothing was sent")
    return SendResult.unknown(provider, f"{type(exc).__name__} after the request left")
