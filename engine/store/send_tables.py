"""Tables of the send path: each delivery (written before the provider is called) and what
was reported about it afterwards, every guard's decision, and the discount codes issued."""

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
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cartflow.engine.store.base import Base, Id, JSONType


class Delivery(Base):
    """One message, written before the provider is called.

    ``pending → sending → accepted → delivered | failed | unknown``. ``unknown`` means the
    request may have left: it is reconciled, never resent blindly.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_profile_sent", "profile_id", "created_at"),
        # a vendor's receipt names the message by the id the vendor gave it
        Index("ix_deliveries_provider_message", "provider", "provider_message_id"),
        # the sweep that settles deliveries a vanished worker left ``sending``
        Index(
            "ix_deliveries_sending",
            "updated_at",
            sqlite_where=text("status = 'sending'"),
            postgresql_where=text("status = 'sending'"),
        ),
        # never both: one live (not failed, not cancelled) delivery per journey step
        Index(
            "uq_deliveries_live_step",
            "journey_id",
            "step_id",
            unique=True,
            sqlite_where=text("status NOT IN ('failed', 'cancelled')"),
            postgresql_where=text("status NOT IN ('failed', 'cancelled')"),
        ),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    #: ``journey_id:step_id`` (``:N`` for the N-th delivery of a step, after a failure).
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    journey_id: Mapped[str] = mapped_column(ForeignKey("journeys.id"), index=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"))
    cart_id: Mapped[str] = mapped_column(String(200))
    scenario: Mapped[str] = mapped_column(String(100))
    step_id: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(20))
    provider: Mapped[str] = mapped_column(String(100))
    variant: Mapped[str | None] = mapped_column(String(100))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    status: Mapped[str] = mapped_column(String(20))
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    token_code: Mapped[str | None] = mapped_column(String(64))
    rendered: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: When the provider accepted it (a retry can come well after ``created_at``).
    sent_at: Mapped[datetime | None]


class DeliveryEventRow(Base):
    """Something reported about a delivery after it was handed over (``engine.deliveries``):
    kept as events, never by overwriting the delivery."""

    __tablename__ = "delivery_events"
    __table_args__ = (Index("ix_delivery_events_delivery", "delivery_id", "at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"))
    #: One of :class:`cartflow.engine.deliveries.DeliveryEvent`.
    status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime]
    #: The vendor's own word for it (``delivered``, ``DELIVERED_TO_HANDSET``, ``open`` …).
    raw_status: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime]


class Decision(Base):
    """Every guard answer on the send path: go, defer until T, skip because R."""

    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_cart", "cart_id", "at"),
        Index("ix_decisions_profile", "profile_id", "at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime]
    profile_id: Mapped[str | None] = mapped_column(Id)
    cart_id: Mapped[str | None] = mapped_column(String(200))
    journey_id: Mapped[str | None] = mapped_column(Id, index=True)
    scenario: Mapped[str | None] = mapped_column(String(100))
    step_id: Mapped[str | None] = mapped_column(String(100))
    channel: Mapped[str | None] = mapped_column(String(20))
    decision: Mapped[str] = mapped_column(String(20))  # started|sent|deferred|skipped|exited
    reason: Mapped[str] = mapped_column(String(500))
    until: Mapped[datetime | None]
    delivery_id: Mapped[str | None] = mapped_column(Id)


class DiscountToken(Base):
    """A unique discount code; the ledger states come with the tokens issue."""

    __tablename__ = "discount_tokens"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    journey_id: Mapped[str] = mapped_column(ForeignKey("journeys.id"), index=True)
    step_id: Mapped[str] = mapped_column(String(100))
    delivery_id: Mapped[str | None] = mapped_column(Id)
    kind: Mapped[str] = mapped_column(String(10))  # percent | amount
    value: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))  # reserved|issued|released|redeemed
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    redeemed_at: Mapped[datetime | None]
    order_id: Mapped[str | None] = mapped_column(String(200))
