"""What a shopper looked at: the products recently viewed (``product.viewed``) and recently
carted (``cart.updated`` items), per profile.

Each list keeps at most :data:`RECENT_LIMIT` products, one per SKU, newest first by event
time. A late, older event never reorders newer ones: it refreshes nothing that was seen
since, and it is dropped when the list is already full of newer products. On a profile
merge (:func:`move`) the lists join, each SKU keeping its newest sighting, and are cut to
the bound again. Conditions and templates read them as ``visitor.recently_viewed`` and
``visitor.recently_carted`` (:func:`recent`); ``stock`` is there only when the shop sent it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cartflow.engine.events import Event
from cartflow.engine.store.models import RecentProduct

#: The most products each list keeps per shopper.
RECENT_LIMIT = 20
#: The two lists.
VIEWED = "viewed"
CARTED = "carted"
#: What a product record holds, besides its SKU.
FIELDS = ("name", "price", "currency", "url", "image", "category", "stock")


def apply_browsing(session: Session, profile_id: str, event: Event, at: datetime) -> None:
    """Keep the lists as ``event`` changes them (a product view, a cart snapshot)."""
    if event.type == "product.viewed" and event.product is not None:
        product = event.product
        values = {name: getattr(product, name) for name in FIELDS}
        note(session, profile_id, VIEWED, [(product.sku, values)], at)
    elif event.type == "cart.updated" and event.cart is not None and event.cart.items:
        currency = event.cart.currency
        lines = [
            (
                item.sku,
                {
                    "name": item.name,
                    "price": item.price,
                    "currency": currency,
                    "url": item.url,
                    "image": item.image,
                    "category": item.category,
                    "stock": getattr(item, "stock", None),
                },
            )
            for item in event.cart.items
        ]
        note(session, profile_id, CARTED, lines, at)


def note(
    session: Session,
    profile_id: str,
    kind: str,
    products: Iterable[tuple[str, dict[str, Any]]],
    at: datetime,
) -> None:
    """Record ``products`` (SKU, fields) seen at ``at`` on one list, then keep the bound."""
    for sku, values in products:
        row = session.get(RecentProduct, (profile_id, kind, sku))
        if row is None:
            session.add(
                RecentProduct(
                    profile_id=profile_id, kind=kind, sku=sku, seen_at=at, **_clean(values)
                )
            )
        elif at >= row.seen_at:  # newer: it moves up and takes the latest details
            row.seen_at = at
            for name, value in _clean(values).items():
                setattr(row, name, value)
    session.flush()
    _trim(session, profile_id, kind)


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    out = {name: values.get(name) for name in FIELDS}
    out["name"] = out["name"] or ""
    if out["price"] is not None:
        out["price"] = Decimal(str(out["price"]))
    return out


def _rows(session: Session, profile_id: str, kind: str) -> list[RecentProduct]:
    return list(
        session.scalars(
            select(RecentProduct)
            .where(RecentProduct.profile_id == profile_id, RecentProduct.kind == kind)
            .order_by(RecentProduct.seen_at.desc(), RecentProduct.sku)
        )
    )


def _trim(session: Session, profile_id: str, kind: str) -> None:
    extra = [row.sku for row in _rows(session, profile_id, kind)[RECENT_LIMIT:]]
    if extra:
        session.execute(
            delete(RecentProduct).where(
                RecentProduct.profile_id == profile_id,
                RecentProduct.kind == kind,
                RecentProduct.sku.in_(extra),
            )
        )


def move(session: Session, source_id: str, target_id: str) -> None:
    """A merge: the source profile's lists join the target's (newest sighting per SKU)."""
    for kind in (VIEWED, CARTED):
        rows = _rows(session, source_id, kind)
        for row in rows:
            note(
                session,
                target_id,
                kind,
                [(row.sku, {name: getattr(row, name) for name in FIELDS})],
                row.seen_at,
            )
        session.execute(
            delete(RecentProduct).where(
                RecentProduct.profile_id == source_id, RecentProduct.kind == kind
            )
        )


def recent(
    session: Session, profile_id: str, kind: str, exclude: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """One list as product records, newest first, without the SKUs in ``exclude``."""
    skip = set(exclude)
    return [
        {
            "sku": row.sku,
            "name": row.name,
            "price": float(row.price) if row.price is not None else None,
            "currency": row.currency,
            "url": row.url,
            "image": row.image,
            "category": row.category,
            "stock": row.stock,
            "seen_at": row.seen_at,
        }
        for row in _rows(session, profile_id, kind)
        if row.sku not in skip
    ]
