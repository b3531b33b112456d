"""Tables of what moves a cart along: the cart's latest snapshot, the journeys it goes
through, and the durable timers (architecture §4) that fire its idle check and each step."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cartflow.engine.store.base import Base, Id, JSONType


class Cart(Base):
    """The latest snapshot of a shop cart. ``ordered`` is sticky: nothing resurrects it."""

    __tablename__ = "carts"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    #: ``cart`` (the shop's) or ``browse`` (a pseudo-cart of the products a shopper viewed
    #: without carting anything: :mod:`cartflow.engine.browse_abandonment`).
    kind: Mapped[str] = mapped_column(String(10), default="cart", server_default="cart")
    #: active | abandoned | ordered | emptied; a browse cart: active | abandoned |
    #: superseded | closed (by an order)
    status: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    url: Mapped[str | None] = mapped_column(String(2000))
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    value: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    item_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    #: Event time of the snapshot applied; an older snapshot arriving late is ignored.
    snapshot_at: Mapped[datetime]
    last_activity_at: Mapped[datetime]
    abandoned_at: Mapped[datetime | None]
    order_id: Mapped[str | None] = mapped_column(String(200))
    ordered_at: Mapped[datetime | None]
    #: The last checkout step the shopper reached (``checkout.started``'s ``checkout.step``)
    #: and that event's time: an older step arriving late does not replace a newer one.
    checkout_step: Mapped[str | None] = mapped_column(String(200))
    checkout_step_at: Mapped[datetime | None]


class Journey(Base):
    """One cart going through one scenario."""

    __tablename__ = "journeys"
    __table_args__ = (
        Index("ix_journeys_cart_status", "cart_id", "status"),
        Index("ix_journeys_reentry", "profile_id", "scenario", "started_at"),
        # A cart is in at most one active journey at a time.
        Index(
            "uq_journeys_one_active_per_cart",
            "cart_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"))
    cart_id: Mapped[str] = mapped_column(ForeignKey("carts.id"))
    scenario: Mapped[str] = mapped_column(String(100))
    #: The configuration version the journey started with; it keeps it to the end.
    scenario_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))  # active | completed | exited
    exit_reason: Mapped[str | None] = mapped_column(String(200))
    #: Index of the next step to run.
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    #: Step delays count from here: the cart's last activity before abandonment.
    anchor_at: Mapped[datetime]
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    last_sent_at: Mapped[datetime | None]
    #: ``treatment`` or ``holdout`` (control group: gets nothing, measures lift).
    group: Mapped[str] = mapped_column(String(20), default="treatment")
    #: Per-journey state the steps carry (variants picked, deferral start, ...).
    state: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class Timer(Base):
    """A durable timer (architecture §4). ``due_at`` moves forward by the lease when claimed,
    so an expired lease simply makes the row due again: claiming costs O(due), not
    O(pending)."""

    __tablename__ = "timers"
    __table_args__ = (UniqueConstraint("kind", "ref", name="uq_timers_kind_ref"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # cart_idle | journey_step
    ref: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[datetime] = mapped_column(index=True)
    #: When it was meant to fire (``due_at`` moves on each claim); timer lag = now - this.
    scheduled_for: Mapped[datetime]
    claim_token: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class SegmentCart(Base):
    """The Segment door's running cart (docs/doors.md, Segment): Segment sends
    ``Product Added`` / ``Product Removed`` differences, cartflow keeps whole snapshots, so
    the door keeps each cart's lines here and the checkout and order ids seen for it
    (``Order Completed`` without ``cart_id`` finds its cart by them). Purged with the raw
    events (CARTFLOW_EVENT_RETENTION_DAYS after its last change)."""

    __tablename__ = "segment_carts"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    currency: Mapped[str | None] = mapped_column(String(3))
    #: ``userId`` or else ``anonymousId``: Checkout Started carries no ``cart_id``.
    shopper: Mapped[str | None] = mapped_column(String(200), index=True)
    checkout_id: Mapped[str | None] = mapped_column(String(200), index=True)
    order_id: Mapped[str | None] = mapped_column(String(200), index=True)
    updated_at: Mapped[datetime] = mapped_column(index=True)
