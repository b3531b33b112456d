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

Every change of a delivery's state is a function here: :func:`write_pending`,
:func:`start_sending`, :func:`settle`, :func:`undelivered`, :func:`cancel` and
:func:`mark_unknown`. Each
moves the delivery's discount code along with it (:mod:`cartflow.engine.tokens`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from cartflow.engine import stops, tokens
from cartflow.engine.sending import SendResult
from cartflow.engine.store.models import Cart, Delivery, DeliveryEventRow, Journey
from cartflow.engine.timers import RECONCILE, set_timer


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
#: A delivery left ``sending`` longer than this by a dead worker becomes ``unknown``.
SENDING_GRACE = timedelta(seconds=30)
#: Why a delivery a vanished worker left ``sending`` is ``unknown``.
LEFT_SENDING = "worker stopped after the request may have left; reconcile, do not resend"


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


def log_fields(delivery: Delivery) -> dict[str, str]:
    """What a log line about ``delivery`` names (never its address)."""
    return {
        "journey_id": delivery.journey_id,
        "cart_id": delivery.cart_id,
        "step": delivery.step_id,
        "channel": delivery.channel,
        "delivery_id": delivery.id,
    }


def live(session: Session, journey_id: str, step_id: str) -> Delivery | None:
    """The step's delivery that is not failed or cancelled, if it has one."""
    return session.scalar(
        select(Delivery).where(
            Delivery.journey_id == journey_id,
            Delivery.step_id == step_id,
            Delivery.status.not_in(NOT_LIVE),
        )
    )


def write_pending(
    session: Session,
    delivery_id: str,
    journey: Journey,
    step_id: str,
    channel: str,
    *,
    provider: str,
    contact_id: int,
    parts: dict[str, str],
    variant: str | None,
    token_code: str | None,
    now: datetime,
) -> Delivery:
    """Write the step's message as ``pending``, before any provider sees it. Its key is
    ``journey:step`` the first time and ``journey:step:N`` after N-1 failed ones."""
    earlier = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.journey_id == journey.id, Delivery.step_id == step_id)
    )
    delivery = Delivery(
        id=delivery_id,
        idempotency_key=delivery_key(journey.id, step_id, int(earlier or 0) + 1),
        journey_id=journey.id,
        profile_id=journey.profile_id,
        cart_id=journey.cart_id,
        scenario=journey.scenario,
        step_id=step_id,
        channel=channel,
        provider=provider,
        variant=variant,
        contact_id=contact_id,
        status=DeliveryStatus.PENDING.value,
        token_code=token_code,
        rendered=parts,
        created_at=now,
        updated_at=now,
    )
    session.add(delivery)
    session.flush()  # the partial unique index refuses a second live delivery here
    return delivery


def start_sending(
    session: Session,
    delivery: Delivery,
    journey_started_at: datetime,
    now: datetime,
    *,
    profile_id: str | None = None,
) -> bool:
    """``pending → sending`` as a compare-and-set: True for the one caller that may call
    the provider. Only while the journey still runs, the cart is unpaid and no order,
    emptied cart or withdrawn consent on this channel has been *accepted* — applied or
    not (:mod:`cartflow.engine.stops`): an order stored after the guards ran still stops
    it."""
    still_wanted = (
        exists(
            select(Journey.id).where(Journey.id == delivery.journey_id, Journey.status == "active")
        )
        & ~exists(
            select(Cart.id).where(
                # superseded: a browse cart the shopper's cart took over
                Cart.id == delivery.cart_id,
                Cart.status.in_(("ordered", "emptied", "superseded")),
            )
        )
        & stops.none_matching(
            profile_id or delivery.profile_id,  # the journey's shopper (merges move it)
            delivery.cart_id,
            delivery.channel,
            journey_started_at,
        )
    )
    won = session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery.id,
            Delivery.status == DeliveryStatus.PENDING.value,
            still_wanted,
        )
        .values(status=DeliveryStatus.SENDING.value, attempts=Delivery.attempts + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return bool(won)


def settle(
    session: Session,
    delivery: Delivery,
    result: SendResult,
    now: datetime,
    *,
    retry_in: timedelta | None = None,
) -> DeliveryStatus:
    """Record the provider's answer to a ``sending`` delivery. A ``retryable`` answer
    with ``retry_in`` (the retry policy allows another try) puts it back to ``pending``;
    without, it is ``failed`` like a permanent refusal."""
    delivery.provider, delivery.updated_at = result.provider, now
    if result.status == "accepted":
        delivery.status, delivery.error = DeliveryStatus.ACCEPTED.value, None
        delivery.sent_at, delivery.provider_message_id = now, result.provider_message_id
        tokens.issue(session, delivery.token_code)
        add_event(session, delivery, DeliveryEvent.ACCEPTED, now, raw=result.provider)
    elif result.status == "retryable" and retry_in is not None:
        delivery.status, delivery.error = DeliveryStatus.PENDING.value, result.reason
    elif result.status == "unknown":
        delivery.status, delivery.error = DeliveryStatus.UNKNOWN.value, result.reason
        look_up_later(session, delivery, now)
    else:
        delivery.status, delivery.error = DeliveryStatus.FAILED.value, result.reason
        tokens.release(session, delivery.token_code)
        add_event(session, delivery, DeliveryEvent.FAILED, now, raw=result.reason)
    return DeliveryStatus(delivery.status)


def undelivered(session: Session, delivery: Delivery, reason: str, now: datetime) -> None:
    """An ``accepted`` delivery the provider then reported as not delivered, while its
    step waited for the receipt (``failover_within``): ``failed``, so that the step may
    fall over; its code goes back (the shopper never saw it)."""
    delivery.status, delivery.error = DeliveryStatus.FAILED.value, reason[:500]
    delivery.updated_at = now
    tokens.recall(session, delivery.token_code)


def cancel(session: Session, delivery: Delivery, reason: str, now: datetime) -> None:
    """A ``pending`` delivery that will not go after all; its code goes back."""
    delivery.status, delivery.error = DeliveryStatus.CANCELLED.value, reason[:500]
    delivery.updated_at = now
    tokens.release(session, delivery.token_code)


#: How long after a send turned ``unknown`` its vendor is first asked about it.
FIRST_LOOK = timedelta(minutes=1)


def look_up_later(session: Session, delivery: Delivery, now: datetime) -> None:
    """``delivery`` just became ``unknown``: its vendor is asked what became of it
    shortly (a ``reconcile`` timer, :mod:`cartflow.engine.reconcile`)."""
    set_timer(session, RECONCILE, delivery.id, now + FIRST_LOOK)


def mark_unknown(delivery: Delivery, reason: str, now: datetime) -> None:
    """A ``sending`` delivery whose answer never came: the request may have left, so it
    is reconciled with the provider, never sent again. Its code stays reserved."""
    delivery.status, delivery.error, delivery.updated_at = (
        DeliveryStatus.UNKNOWN.value,
        reason,
        now,
    )
