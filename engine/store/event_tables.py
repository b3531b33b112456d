"""Tables of what the API accepted: every event as received, and the stops an order, an
emptied cart or a withdrawn consent holds from its 202 until it is applied (architecture §5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from cartflow.engine.store.base import Base, JSONType


class RawEvent(Base):
    """Every accepted event, as received. Idempotent on the event id."""

    __tablename__ = "events"
    __table_args__ = (
        Index(
            "ix_events_unapplied",
            "received_at",
            sqlite_where=text("applied_at IS NULL"),
            postgresql_where=text("applied_at IS NULL"),
        ),
        Index("ix_events_received_at", "received_at"),  # the retention's purge
    )
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime]
    received_at: Mapped[datetime]
    applied_at: Mapped[datetime | None]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    #: Why the event could not be applied (it was set aside, not retried forever).
    error: Mapped[str | None] = mapped_column(Text)
    #: SHA-256 of the event as the shop sent it: the same id with another body is a
    #: conflict (409), not a duplicate. Null for events stored before this was kept.
    digest: Mapped[str | None] = mapped_column(String(64))


class EventStop(Base):
    """Whom an accepted event stops (an order, an emptied cart, a withdrawn consent), from
    the moment the API answered 202 until the event is applied (``engine.stops``).

    Written in the transaction that stores the event, deleted in the one that applies it;
    a row whose event was set aside stays, with ``set_aside_at``, and keeps stopping the
    journeys that began before it arrived.
    """

    __tablename__ = "event_stops"
    __table_args__ = (Index("ix_event_stops_who", "kind", "value"),)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    #: ``cart_id``, ``customer_id`` or ``anonymous_id`` (the last two as in ``identities``).
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    #: The channel it stops, or ``*`` for every channel.
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    #: The event type, for the reason a send was refused.
    event_type: Mapped[str] = mapped_column(String(40))
    received_at: Mapped[datetime]
    set_aside_at: Mapped[datetime | None]
