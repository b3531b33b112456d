"""Tables of the shopper: the profile, the ids the shop knows them by, their contact points,
consent per channel and its proof log, and their visits (sessions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from cartflow.engine.store.base import Base, Id, JSONType


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


class ConsentLog(Base):
    """Every consent change as it came, append-only, kept for proof (the sender must
    show consent: 38-FZ art. 18): who, which channel, granted or withdrawn, where it came
    from (``source``: ``event:<id>``, ``provider:…``, ``link:…``, ``import:…``), when it
    happened (``at``) and was recorded, the text or channel it came through (``evidence``)
    and whether a newer answer already stood (``superseded``: logged, not applied)."""

    __tablename__ = "consent_log"
    __table_args__ = (Index("ix_consent_log_profile", "profile_id", "at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"))
    channel: Mapped[str] = mapped_column(String(20))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime]
    recorded_at: Mapped[datetime]
    evidence: Mapped[str | None] = mapped_column(Text)
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)


class Session(Base):
    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class ProfileFeatures(Base):
    """Behaviour kept incrementally, one row per profile (:mod:`cartflow.engine.features`)."""

    __tablename__ = "profile_features"
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), primary_key=True)
    #: Lifetime counters and per-UTC-day buckets of the last 31 days (bounded).
    doc: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime]
