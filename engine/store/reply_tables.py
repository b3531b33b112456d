"""Replies shoppers send that are no keyword (a question by SMS or Telegram), kept until
the shop's support has them (:mod:`cartflow.engine.replies`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cartflow.engine.store.base import Base, Id


class ShopperReply(Base):
    """One reply: ``pending → forwarded → handled``, or ``failed`` (support unreachable
    for a day) or ``unmatched`` (no shopper has that address)."""

    __tablename__ = "replies"
    __table_args__ = (
        # a vendor's webhook delivered twice is one reply
        UniqueConstraint("provider", "message_id", name="uq_replies_message"),
        Index("ix_replies_profile", "profile_id", "received_at"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    provider: Mapped[str] = mapped_column(String(100))
    message_id: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(20))
    #: The shopper's number or chat id (support answers there); never logged.
    sender: Mapped[str] = mapped_column(String(4096))
    text: Mapped[str] = mapped_column(Text)
    profile_id: Mapped[str | None] = mapped_column(Id)
    #: The message it answers: the newest delivery to that address on that channel.
    delivery_id: Mapped[str | None] = mapped_column(Id)
    status: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[datetime]
    #: The shopper's journeys wait until then, unless support says so earlier.
    paused_until: Mapped[datetime | None]
    forwarded_at: Mapped[datetime | None]
    handled_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(500))
