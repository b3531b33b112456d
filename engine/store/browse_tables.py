"""Tables of what a shopper looked at: the products recently viewed and recently carted,
per profile, bounded and newest first (:mod:`cartflow.engine.browsing`)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from cartflow.engine.store.base import Base


class RecentProduct(Base):
    """One product a shopper viewed (``kind = viewed``) or carted (``kind = carted``); one
    row per SKU and kind, stamped with the event time it was last seen at."""

    __tablename__ = "recent_products"
    __table_args__ = (Index("ix_recent_products_newest", "profile_id", "kind", "seen_at"),)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)  # viewed | carted
    sku: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    price: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    currency: Mapped[str | None] = mapped_column(String(3))
    url: Mapped[str | None] = mapped_column(String(2000))
    image: Mapped[str | None] = mapped_column(String(2000))
    category: Mapped[str | None] = mapped_column(String(200))
    #: How many are left, only when the shop sent it (never invented).
    stock: Mapped[int | None] = mapped_column(Integer)
    seen_at: Mapped[datetime]
