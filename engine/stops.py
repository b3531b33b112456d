"""Stops: a 2xx is final.

Once the API has answered 202 for an ``order.completed``, an emptied cart or a withdrawn
consent, no reminder for that cart or shopper may leave — however far behind the queue
that applies events is, and even if the message that should apply it was lost. So the
event's effect on sending does not wait for its application:

* at ingest, in the transaction that stores the event (before the 202), :func:`stops_of`
  writes one ``event_stops`` row per key the event stops — the cart, the shop's customer
  and anonymous ids — and per channel (``*`` for all);
* the send path refuses while a row matches the delivery's cart or any identity of its
  shopper on its channel: the guards defer the step (or pass a channel whose consent was
  withdrawn), and the compare-and-set that moves a delivery to ``sending`` checks the same
  rows, so an order stored between the guards and the send still stops it;
* the transaction that applies the event deletes its rows — from then on state says the
  same thing (cart ordered, consent withdrawn). An event that cannot be applied (set
  aside) keeps its rows, marked, and they keep stopping the journeys that began before it
  arrived: fail closed.

Chosen over applying such events inside the ingest transaction because the check costs
one indexed lookup on a table that holds only events in flight, keeps ingest as fast as
a plain insert, and holds on both backends whatever state the broker is in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, or_, select, update
from sqlalchemy.orm import Session

from cartflow.engine.events import Event
from cartflow.engine.store.models import EventStop, Identity

#: Every channel.
ALL = "*"
#: How soon a step held by a stop that is not applied yet looks again, at first. Applying
#: the event ends the journey by itself, so the look is only a safety net: it backs off
#: with the stop's age (a stop unapplied for an hour is looked at every ten minutes).
STOP_RECHECK = timedelta(seconds=5)
#: The longest wait between two looks.
STOP_RECHECK_MAX = timedelta(minutes=10)


@dataclass(frozen=True)
class Stop:
    """One matching stop: which event, and whether it is still waiting to be applied."""

    event_id: str
    event_type: str
    channel: str
    received_at: datetime
    set_aside: bool

    def recheck_at(self, now: datetime) -> datetime:
        """When a step held by this stop looks again."""
        waited = max(now - self.received_at, timedelta(0))
        return now + min(max(waited, STOP_RECHECK), STOP_RECHECK_MAX)

    def describe(self) -> str:
        what = self.event_type if self.channel == ALL else f"{self.channel} consent withdrawn"
        if self.set_aside:
            return f"{what} (accepted at {self.received_at.isoformat()}, could not be applied)"
        return f"{what} accepted at {self.received_at.isoformat()}, not applied yet"


def stops_of(event: Event) -> list[tuple[str, str, str]]:
    """The ``(kind, value, channel)`` keys an event stops; empty for most events."""
    who = [
        (k, v)
        for k, v in (("customer_id", event.customer_id), ("anonymous_id", event.anonymous_id))
        if v
    ]
    keys: list[tuple[str, str, str]] = []
    if event.type == "order.completed" and event.order is not None:
        # an order ends every journey of the shopper, and its cart's
        keys += [(kind, value, ALL) for kind, value in who]
        if event.order.cart_id:
            keys.append(("cart_id", event.order.cart_id, ALL))
    if event.type == "cart.updated" and event.cart is not None and not event.cart.items:
        keys.append(("cart_id", event.cart.id, ALL))
    for channel, granted in (event.consent or {}).items():
        if not granted:
            keys += [(kind, value, channel) for kind, value in who]
    return list(dict.fromkeys(keys))


def rows_for(event: Event, event_id: str, received_at: datetime) -> list[dict[str, object]]:
    return [
        {
            "event_id": event_id,
            "kind": kind,
            "value": value[:200],
            "channel": channel,
            "event_type": event.type,
            "received_at": received_at,
            "set_aside_at": None,
        }
        for kind, value, channel in stops_of(event)
    ]


def matching(
    profile_id: str, cart_id: str, channels: tuple[str, ...], journey_started_at: datetime
) -> ColumnElement[bool]:
    """SQL: the stops that hold a send on one of ``channels`` for this cart and shopper.

    A stop waiting to be applied holds every journey; a set-aside order or emptied cart
    holds those that began before it arrived (a later journey is for a later cart); a
    set-aside consent withdrawal holds them all until :func:`consent_given` clears it."""
    identity = exists(
        select(Identity.value).where(
            Identity.profile_id == profile_id,
            Identity.kind == EventStop.kind,
            Identity.value == EventStop.value,
        )
    )
    return and_(
        or_(and_(EventStop.kind == "cart_id", EventStop.value == cart_id), identity),
        EventStop.channel.in_((ALL, *channels)),
        or_(
            EventStop.set_aside_at.is_(None),
            # a withdrawn consent is about the shopper, not one cart: it holds every
            # journey until a later consent for that channel is applied
            EventStop.channel != ALL,
            EventStop.received_at >= journey_started_at,
        ),
    )


def find(
    session: Session,
    profile_id: str,
    cart_id: str,
    channels: tuple[str, ...],
    journey_started_at: datetime,
) -> list[Stop]:
    rows = session.execute(
        select(
            EventStop.event_id,
            EventStop.event_type,
            EventStop.channel,
            EventStop.received_at,
            EventStop.set_aside_at,
        )
        .where(matching(profile_id, cart_id, channels, journey_started_at))
        # stops for every channel first: a long list of consent stops must not hide one
        .order_by(EventStop.channel != ALL, EventStop.received_at)
        .limit(50)
    ).all()
    return [Stop(r[0], r[1], r[2], r[3], r[4] is not None) for r in rows]


def none_matching(
    profile_id: str, cart_id: str, channel: str, journey_started_at: datetime
) -> ColumnElement[bool]:
    """SQL for a compare-and-set: no stop holds this send."""
    return ~exists(
        select(EventStop.event_id).where(
            matching(profile_id, cart_id, (channel,), journey_started_at)
        )
    )


def applied(session: Session, event_ids: Sequence[str]) -> None:
    """The events' effects are in state now: their stops are no longer needed."""
    if event_ids:
        session.execute(delete(EventStop).where(EventStop.event_id.in_(list(event_ids))))


def set_aside(session: Session, event_id: str, now: datetime) -> None:
    """The event could not be applied: its stops stay, marked, and keep holding."""
    session.execute(
        update(EventStop)
        .where(EventStop.event_id == event_id, EventStop.set_aside_at.is_(None))
        .values(set_aside_at=now)
    )


def consent_given(
    session: Session, event: Event, received_at: datetime, granted: Sequence[str]
) -> None:
    """A consent grant was applied: set-aside withdrawals of those channels received
    before it no longer hold (state is the authority again)."""
    who = [
        (k, v)
        for k, v in (("customer_id", event.customer_id), ("anonymous_id", event.anonymous_id))
        if v
    ]
    if not granted or not who:
        return
    session.execute(
        delete(EventStop).where(
            EventStop.set_aside_at.is_not(None),
            EventStop.channel.in_(granted),
            EventStop.received_at <= received_at,
            or_(*(and_(EventStop.kind == k, EventStop.value == v) for k, v in who)),
        )
    )
