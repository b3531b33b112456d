"""What shoppers do with a message once it arrived: through its signed links
(:mod:`cartflow.engine.links`) a click, kept as a ``clicked`` delivery event, and an
unsubscribe, which becomes a native ``consent.updated`` event (stored like any the shop
sends, so that once the answer is given no message on that channel leaves — even one
already past its guards: :mod:`cartflow.engine.stops`); through the shop's own site or
app, the native events ``message.opened`` and ``message.clicked`` naming the delivery (a
push notification opened: no link of cartflow's is involved)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from cartflow.engine.deliveries import DeliveryEvent, add_event
from cartflow.engine.events import Event
from cartflow.engine.failover import nudge
from cartflow.engine.features import note_return
from cartflow.engine.inbound import consent_event, event_ids
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Delivery, DeliveryEventRow

log = structlog.get_logger("cartflow.engagement")
#: Native event type → the delivery event it records.
ENGAGEMENT_EVENTS = {
    "message.opened": DeliveryEvent.OPENED,
    "message.clicked": DeliveryEvent.CLICKED,
}


@dataclass(frozen=True)
class Unsubscribe:
    """The consent event an unsubscribe link stands for, and what it is about."""

    event: Event
    channel: str


def record_engagement(db: Database, delivery_id: str, status: DeliveryEvent, now: datetime) -> bool:
    """Keep ``status`` (``clicked``, ``opened``, ``unsubscribed``) for the delivery once;
    True when it was new. A step waiting for this delivery's receipt stops waiting."""
    with db.transaction() as session:
        delivery = session.get(Delivery, delivery_id, with_for_update=True)
        if delivery is None:
            return False
        return _engaged(session, delivery, status, now, now, "link")


def apply_engagement(session: Session, profile_id: str, event: Event, now: datetime) -> None:
    """Apply a ``message.opened`` / ``message.clicked`` event inside the caller's
    transaction: the delivery it names gets that delivery event once — when the delivery
    is this shopper's (another shopper's or an unknown one changes nothing, logged)."""
    status = ENGAGEMENT_EVENTS[event.type]
    delivery = session.get(Delivery, event.delivery_id or "", with_for_update=True)
    if delivery is None or delivery.profile_id != profile_id:
        why = "unknown delivery" if delivery is None else "a delivery of another shopper"
        log.warning("engagement_ignored", event_id=event.id, type=event.type, reason=why)
        return
    _engaged(session, delivery, status, event.at or now, now, f"event:{event.id}")


def _engaged(
    session: Session,
    delivery: Delivery,
    status: DeliveryEvent,
    at: datetime,
    now: datetime,
    raw: str,
) -> bool:
    known = session.scalar(
        select(DeliveryEventRow.id)
        .where(
            DeliveryEventRow.delivery_id == delivery.id,
            DeliveryEventRow.status == status.value,
        )
        .limit(1)
    )
    if known is not None:
        return False
    add_event(session, delivery, status, at, raw=raw, received_at=now)
    nudge(session, delivery, status, now)
    if status is DeliveryEvent.CLICKED or (
        status is DeliveryEvent.OPENED and delivery.channel == "push"
    ):  # the message brought them back (an email opened is read, not a visit)
        note_return(session, delivery.profile_id, delivery.channel, at, now)
    return True


def unsubscribe_event(db: Database, delivery_id: str, now: datetime) -> Unsubscribe | None:
    """The ``consent.updated`` event withdrawing the delivery's channel for its shopper
    (its id and time are the delivery's and the minute's: a double click is one event, a
    click days later after a re-subscribe counts again). None when the delivery or any
    id of its shopper is unknown."""
    with db.reading() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            return None
        ids = event_ids(session, delivery.profile_id)
        if not ids:
            return None
        minute = now.replace(second=0, microsecond=0)
        event = consent_event(
            f"unsubscribe-{delivery.id}-{minute:%Y%m%d%H%M}",
            ids,
            delivery.channel,
            False,
            minute,
            f"unsubscribe link of delivery {delivery.id}",
        )
        return Unsubscribe(event, delivery.channel)
