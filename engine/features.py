"""Behaviour kept incrementally as events arrive, read at evaluation time with ``now``.

One ``profile_features`` row per profile holds a JSON document rather than typed columns:
the features are many and will grow, they are always read together (one primary-key
lookup per evaluation, no COUNT query), and the rolling windows need per-day buckets,
which a document holds naturally. The document stays bounded (its shape and the rules of
one event: :mod:`cartflow.engine.feature_doc`): lifetime counters, the latest/first device
and source, the few latest visits and carts, and per-UTC-day buckets of the last
``KEEP_DAYS`` days, trimmed relative to the newest day seen. A late event (older ``at``)
lands in its own day's bucket, so it counts in every window it belongs to.

A window "in N days" read at ``now`` covers the UTC days from ``now.date() - (N - 1)``
to ``now.date()`` inclusive (day granularity). Orders are counted once per order id (the
last 200 ids are remembered).

Lifetime figures (orders, lifetime value, discount share) are a baseline plus what
cartflow saw after it: ``customer.updated`` carries the shop's figures "as of its
``at``" (``base``; a figure it leaves out counts 0); an order dated after the baseline's
``at`` is added on top (``seen``: one small ``[at, total, discounted]`` entry per order),
an order dated at or before it is taken to be inside the figures. A ``customer.updated``
dated at or after the current baseline replaces it and drops the ``seen`` orders it now
covers; an older one is ignored. Without any, the baseline is zero and every order counts.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from cartflow.engine import feature_doc, feature_merge
from cartflow.engine.events import Event
from cartflow.engine.feature_doc import parse_time, utc_day
from cartflow.engine.store.models import ProfileFeatures


def _row(session: Session, profile_id: str, now: datetime) -> ProfileFeatures:
    row = session.get(ProfileFeatures, profile_id)
    if row is None:
        row = ProfileFeatures(profile_id=profile_id, doc={}, updated_at=now)
        session.add(row)
    return row


def apply_features(
    session: Session,
    profile_id: str,
    event: Event,
    at: datetime,
    now: datetime,
    *,
    new_visit: bool,
    visit_started_at: datetime | None = None,
) -> None:
    """Update the profile's features for one event, inside the event's transaction."""
    row = _row(session, profile_id, now)
    row.doc = feature_doc.update(
        row.doc or {}, event, at, new_visit=new_visit, visit_started_at=visit_started_at
    )
    row.updated_at = now


def note_return(
    session: Session, profile_id: str, channel: str, at: datetime, now: datetime
) -> None:
    """A message on ``channel`` brought the shopper back (a click; a push opened)."""
    row = _row(session, profile_id, now)
    row.doc = feature_doc.came_back(row.doc or {}, channel, at)
    row.updated_at = now


def merge_features(session: Session, source_id: str, target_id: str, now: datetime) -> None:
    """The source profile's features join the target's (a merge of two profiles)."""
    source = session.get(ProfileFeatures, source_id)
    if source is None:
        return
    target = _row(session, target_id, now)
    target.doc = feature_merge.merged(target.doc or {}, source.doc or {})
    target.updated_at = now
    session.delete(source)


def _window(doc: dict[str, Any], key: str, now: datetime, days: int) -> int:
    return sum(v.get(key, 0) for v in _buckets(doc, now, days))


def _within(day: str, now: datetime, days: int) -> bool:
    """Whether the UTC ``day`` is in the ``days`` up to ``now``'s, today included."""
    today = date.fromisoformat(utc_day(now))
    return (today - timedelta(days=days - 1)).isoformat() <= day <= today.isoformat()


def _buckets(doc: dict[str, Any], now: datetime, days: int) -> list[dict[str, Any]]:
    return [v for d, v in (doc.get("days") or {}).items() if _within(d, now, days)]


def _focus(doc: dict[str, Any], now: datetime) -> tuple[str | None, float]:
    """The category viewed most in 30 days (ties: the first by name) and its share."""
    counts: dict[str, int] = {}
    for bucket in _buckets(doc, now, 30):
        for category, n in bucket.get("c", {}).items():
            counts[category] = counts.get(category, 0) + n
    if not counts:
        return None, 0.0
    top = min(counts, key=lambda c: (-counts[c], c))
    return top, counts[top] / sum(counts.values())


def read_features(
    session: Session, profile_id: str, now: datetime, last_seen_at: datetime | None
) -> dict[str, Any]:
    """The feature values at ``now`` (the engine's clock)."""
    row = session.get(ProfileFeatures, profile_id)
    return features_of(row.doc if row is not None else {}, now, last_seen_at)


def _later(*values: str | None) -> datetime | None:
    present = [parse_time(v) for v in values if v]
    return max(present) if present else None


def features_of(
    doc: dict[str, Any], now: datetime, last_seen_at: datetime | None
) -> dict[str, Any]:
    """The feature values of one kept document at ``now`` (``{}``: a shopper never seen)."""
    base = doc.get("base") or {}
    seen = doc.get("seen", [])
    orders = base.get("orders", 0) + len(seen)
    # never more than the orders (a shop may send inconsistent figures)
    discounted = min(orders, base.get("discounted", 0) + sum(1 for o in seen if o[2]))
    spent = float(Decimal(base.get("spent", "0")) + sum(Decimal(o[1]) for o in seen))
    visit = feature_doc.latest_visit(doc) or {}
    category, share = _focus(doc, now)
    first_order = [
        parse_time(v) for v in (base.get("first_order_at"), doc.get("order_first_at")) if v
    ]
    return {
        "sessions": doc.get("sessions", 0),
        "sessions_7d": _window(doc, "s", now, 7),
        "sessions_30d": _window(doc, "s", now, 30),
        "page_views_session": visit.get("pv", 0),
        "product_views_session": visit.get("prv", 0),
        "page_views_7d": _window(doc, "pv", now, 7),
        "product_views_7d": _window(doc, "prv", now, 7),
        "top_category": category,
        "top_category_share": share,
        "cart_adds_7d": _window(doc, "add", now, 7),
        "cart_removals_7d": _window(doc, "rm", now, 7),
        "cart_returns_7d": _window(doc, "r", now, 7),
        "checkout_reached": bool(doc.get("checkout_reached", False)),
        "checkout_step": doc.get("checkout_step"),
        "device": doc.get("device_latest"),
        "first_device": doc.get("device_first"),
        "source": doc.get("source_latest"),
        "first_source": doc.get("source_first"),
        "hours_since_last_visit": (
            (now - last_seen_at).total_seconds() / 3600 if last_seen_at is not None else None
        ),
        "returned_via": (doc.get("back") or {}).get("channel"),
        "orders_30d": sum(
            1
            for at in (doc.get("orders") or {}).values()
            if _within(utc_day(parse_time(at)), now, 30)
        ),
        "orders_total": orders,
        "lifetime_value": spent,
        "average_order_value": spent / orders if orders else 0.0,
        "discount_orders": discounted,
        "discount_share": discounted / orders if orders else 0.0,
        "first_order_at": min(first_order) if first_order else None,
        "last_order_at": _later(base.get("last_order_at"), doc.get("order_last_at")),
    }
