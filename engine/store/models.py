"""Tables. Every timestamp is stored as UTC and read back timezone-aware.

The shapes leave room for what the roadmap adds later: contact points that can be marked
invalid, consent with its source, delivery states up to ``unknown`` with the provider's
message id, a holdout group and an A/B variant on every journey and delivery, a token
ledger, and a decision log that answers "why didn't she get it?".
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use the engine's Clock")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
Id = String(64)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
    }


class Profile(Base):
    """One shopper, across devices and identities."""

    __tablename__ = "profiles"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: Last time the shopper did anything (any event): "still browsing" checks read this.
    last_seen_at: Mapped[datetime | None]
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    first_name: Mapped[str | None] = mapped_column(String(200))
    #: Set when this profile was merged into another (identity resolution).
    merged_into: Mapped[str | None] = mapped_column(Id)
    #: Behavioural features and other attributes, kept incrementally.
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class Identity(Base):
    """An id the shop knows a shopper by: ``anonymous_id`` or ``customer_id``."""

    __tablename__ = "identities"
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    created_at: Mapped[datetime]


class Contact(Base):
    """A contact point on one channel. Marked invalid (never deleted) on a hard failure."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("profile_id", "channel", "address"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(4096))
    valid: Mapped[bool] = mapped_column(Boolean, default=True)
    invalid_reason: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime]


class Consent(Base):
    """Consent per channel, with where it came from (event id or provider signal)."""

    __tablename__ = "consents"
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]


class Session(Base):
    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class Cart(Base):
    """The latest snapshot of a shop cart. ``ordered`` is sticky: nothing resurrects it."""

    __tablename__ = "carts"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))  # active | abandoned | ordered | emptied
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


class Delivery(Base):
    """One message, written before the provider is called.

    ``pending → sending → accepted → delivered | failed | unknown``. ``unknown`` means the
    request may have left: it is reconciled, never resent blindly.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_profile_sent", "profile_id", "created_at"),
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


class ConfigVersion(Base):
    """Every configuration that went live, file by file, so a journey can finish on the
    version it started with even after restarts and later changes."""

    __tablename__ = "config_versions"
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime]
    #: Relative path → file text (scenarios.yaml, includes, templates).
    files: Mapped[dict[str, Any]] = mapped_column(JSONType)
