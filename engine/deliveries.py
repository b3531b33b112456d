"""The vocabulary of a delivery: its states, and what comes back about it afterwards.

A delivery row is one message on one channel for one journey step::

    pending ──▶ sending ──▶ accepted ──▶ (receipts: delivered, opened, clicked …)
       │           │    └─▶ failed       a permanent refusal; the step may fall over
       │           └──────▶ unknown      the request may have left: reconcile, never resend
       └─▶ cancelled                     written, never handed to a provider

The database holds "never both": at most one delivery per journey step that is not
``failed`` or ``cancelled`` (a partial unique index), so a failover after a permanent
failure writes a second row, and nothing can write two live ones.

What providers report later (receipts, opens, clicks, unsubscribes) is kept as
``delivery_events`` rows — one normalised :class:`DeliveryEvent` each, with the vendor's raw
status — never by overwriting the delivery.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from cartflow.engine.store.models import Delivery, DeliveryEventRow


class DeliveryStatus(StrEnum):
    """Where a delivery is; stored in ``deliveries.status``."""

    PENDING = "pending"
    SENDING = "sending"
    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    FAILED = "failed"
    UNKNOWN = "unknown"
    CANCELLED = "cancelled"


#: States that leave room for another delivery of the same step (failover).
NOT_LIVE = (DeliveryStatus.FAILED, DeliveryStatus.CANCELLED)


class DeliveryEvent(StrEnum):
    """What a provider (or the engine) reported about a delivery; ``delivery_events.status``."""

    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    FAILED = "failed"
    UNDELIVERABLE = "undeliverable"
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"


#: Engagement, weakest first: a click implies an open, an open a delivery.
ENGAGEMENT = (DeliveryEvent.DELIVERED, DeliveryEvent.OPENED, DeliveryEvent.CLICKED)


def at_least(level: str) -> tuple[DeliveryEvent, ...]:
    """The events that show engagement of at least ``level`` (``delivered``, ``opened``,
    ``clicked``)."""
    index = [e.value for e in ENGAGEMENT].index(level)
    return ENGAGEMENT[index:]


def delivery_key(journey_id: str, step_id: str, attempt: int = 1) -> str:
    """The delivery's idempotency key (sent to providers that take one): ``journey:step``
    for the first delivery of a step, ``journey:step:N`` for the N-th (failover)."""
    return f"{journey_id}:{step_id}" if attempt == 1 else f"{journey_id}:{step_id}:{attempt}"


def add_event(
    session: Session,
    delivery: Delivery,
    status: DeliveryEvent,
    at: datetime,
    *,
    raw: str | None = None,
    received_at: datetime | None = None,
) -> DeliveryEventRow:
    """Keep what was reported about ``delivery`` (the delivery row keeps its state)."""
    row = DeliveryEventRow(
        delivery_id=delivery.id,
        status=status.value,
        at=at,
        raw_status=(raw or None) and str(raw)[:200],
        received_at=received_at or at,
    )
    session.add(row)
    return row
