"""What shoppers do with a message once it arrived, through its signed links
(:mod:`cartflow.engine.links`): a click, kept as a ``clicked`` delivery event, and an
unsubscribe, which becomes a native ``consent.updated`` event (stored like any the shop
sends, so that once the answer is given no message on that channel leaves — even one
already past its guards: :mod:`cartflow.engine.stops`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from cartflow.engine.deliveries import DeliveryEvent, add_event
from cartflow.engine.events import Event
from cartflow.engine.failover import nudge
from cartflow.engine.inbound import consent_event, event_ids
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Delivery, DeliveryEventRow


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
        known = session.scalar(
            select(DeliveryEventRow.id)
            .where(
                DeliveryEventRow.delivery_id == delivery_id,
                DeliveryEventRow.status == status.value,
            )
            .limit(1)
        )
        if known is not None:
            return False
        add_event(session, delivery, status, now, raw="link", received_at=now)
        nudge(session, delivery, status, now)
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
