"""Layers in front of a provider: the seam for rate limits, circuit breakers and metrics.

A layer gets each message and the rest of the chain (``next``) and answers for it, as a
dramatiq middleware or an ASGI one does: it may look at the message, call ``next`` (or
not: a breaker that is open), and look at or change the result. :func:`chain` puts layers
in order — the first listed sees the message first and the result last::

    send = chain([Counted(), limiter], router.send)

:class:`Counted` is the one layer shipped: attempts by provider and status, for
``/metrics``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from cartflow.engine.sending import Message, SendResult

#: Sends one message: a provider's ``send``, or the chain after a layer.
Send = Callable[[Message], SendResult]


class SenderLayer(Protocol):
    """One layer of the chain in front of a provider."""

    def send(self, message: Message, next: Send) -> SendResult:
        """Answer for ``message``; ``next(message)`` asks the rest of the chain."""
        ...


def chain(layers: Sequence[SenderLayer], last: Send) -> Send:
    """``layers`` in front of ``last``, the first of them outermost."""
    send = last
    for layer in reversed(layers):
        send = _bind(layer, send)
    return send


def _bind(layer: SenderLayer, rest: Send) -> Send:
    def send(message: Message) -> SendResult:
        return layer.send(message, rest)

    return send


class Counted:
    """Counts every attempt by provider and status (``accepted``, ``retryable``,
    ``permanent``, ``unknown``; ``raised`` when the chain behind raised)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def send(self, message: Message, next: Send) -> SendResult:
        try:
            result = next(message)
        except Exception:
            self._add(f"channel:{message.channel}", "raised")
            raise
        self._add(result.provider, result.status)
        return result

    def _add(self, provider: str, status: str) -> None:
        with self._lock:
            self._counts[(provider, status)] += 1

    def counts(self) -> dict[tuple[str, str], int]:
        """(provider, status) → attempts so far, a copy."""
        with self._lock:
            return dict(self._counts)
