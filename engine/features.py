"""Behaviour kept incrementally as events arrive, read at evaluation time with ``now``.

One ``profile_features`` row per profile holds a JSON document rather than typed columns:
the features are many and will grow, they are always read together (one primary-key
lookup per evaluation, no COUNT query), and the rolling windows need per-day buckets,
which a document holds naturally. The document stays bounded: lifetime counters, the
latest/first device and source, and per-UTC-day buckets ``days[YYYY-MM-DD]`` of the last
:data:`KEEP_DAYS` days, trimmed relative to the newest day seen. A late event (older
``at``) lands in its own day's bucket, so it counts in every window it belongs to.

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

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from cartflow.engine.events import Event
from cartflow.engine.store.models import ProfileFeatures

#: Days of buckets kept; the longest window read is 30 days.
KEEP_DAYS = 31

#: Event type → bucket counter it increments.
_COUNTED = {"page.viewed": "pv", "product.viewed": "prv"}


def _utc_day(at: datetime) -> str:
    return at.astimezone(UTC).date().isoformat()


def _row(session: Session, profile_id: str, now: datetime) -> ProfileFeatures:
    row = session.get(ProfileFeatures, profile_id)
    if row is None:
        row = ProfileFeatures(profile_id=profile_id, doc={}, updated_at=now)
        session.add(row)
    return row


def _bump(doc: dict[str, Any], day: str, key: str) -> None:
    days = doc.setdefault("days", {})
    days.setdefault(day, {})
    days[day][key] = days[day].get(key, 0) + 1
    newest = max(days)
    oldest = (date.fromisoformat(newest) - timedelta(days=KEEP_DAYS - 1)).isoformat()
    for stale in [d for d in days if d < oldest]:
        del days[stale]


def apply_features(
    session: Session, profile_id: str, event: Event, at: datetime, now: datetime, *, new_visit: bool
) -> None:
    """Update the profile's features for one event, inside the event's transaction."""
    row = _row(session, profile_id, now)
    doc = dict(row.doc or {})
    doc["days"] = {d: dict(v) for d, v in (doc.get("days") or {}).items()}
    day = _utc_day(at)
    if new_visit:
        doc["sessions"] = doc.get("sessions", 0) + 1
        _bump(doc, day, "s")
    if event.type in _COUNTED:
        _bump(doc, day, _COUNTED[event.type])
    if event.type == "session.started" and event.session is not None:
        for key in ("device", "source"):
            value = getattr(event.session, key)
            if value is None:
                continue
            if f"{key}_first" not in doc or at < datetime.fromisoformat(doc[f"{key}_first_at"]):
                doc[f"{key}_first"], doc[f"{key}_first_at"] = value, at.isoformat()
            if f"{key}_latest" not in doc or at >= datetime.fromisoformat(doc[f"{key}_latest_at"]):
                doc[f"{key}_latest"], doc[f"{key}_latest_at"] = value, at.isoformat()
    if event.type == "checkout.started":
        doc["checkout_reached"] = True
        if event.checkout is not None and (
            "checkout_step_at" not in doc or at >= datetime.fromisoformat(doc["checkout_step_at"])
        ):
            doc["checkout_step"], doc["checkout_step_at"] = event.checkout.step, at.isoformat()
    if event.type == "order.completed" and event.order is not None:
        ids = list(doc.get("order_ids", []))
        if event.order.id not in ids:
            ids.append(event.order.id)
            doc["order_ids"] = ids[-200:]
            _bump(doc, day, "o")
            base = doc.get("base")
            if base is None or at > datetime.fromisoformat(base["at"]):
                total = str(event.order.total or Decimal(0))
                seen = [
                    *doc.get("seen", []),
                    [at.isoformat(), total, bool(event.order.discount_code)],
                ]
                doc["seen"] = seen
    if event.type == "customer.updated" and event.customer is not None:
        base = doc.get("base")
        if base is None or at >= datetime.fromisoformat(base["at"]):
            figures = event.customer
            doc["base"] = {
                "at": at.isoformat(),
                "orders": figures.orders_count or 0,
                "spent": str(figures.total_spent or Decimal(0)),
                "discounted": figures.discount_orders_count or 0,
            }
            # orders up to `at` are inside the shop's figures: keep only the later ones
            doc["seen"] = [o for o in doc.get("seen", []) if datetime.fromisoformat(o[0]) > at]
    row.doc = doc
    row.updated_at = now


def _window(doc: dict[str, Any], key: str, now: datetime, days: int) -> int:
    today = date.fromisoformat(_utc_day(now))
    first = (today - timedelta(days=days - 1)).isoformat()
    last = today.isoformat()
    return sum(v.get(key, 0) for d, v in (doc.get("days") or {}).items() if first <= d <= last)


def read_features(
    session: Session, profile_id: str, now: datetime, last_seen_at: datetime | None
) -> dict[str, Any]:
    """The feature values at ``now`` (the engine's clock)."""
    row = session.get(ProfileFeatures, profile_id)
    return features_of(row.doc if row is not None else {}, now, last_seen_at)


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
    return {
        "sessions": doc.get("sessions", 0),
        "sessions_7d": _window(doc, "s", now, 7),
        "sessions_30d": _window(doc, "s", now, 30),
        "page_views_7d": _window(doc, "pv", now, 7),
        "product_views_7d": _window(doc, "prv", now, 7),
        "checkout_reached": bool(doc.get("checkout_reached", False)),
        "checkout_step": doc.get("checkout_step"),
        "device": doc.get("device_latest"),
        "first_device": doc.get("device_first"),
        "source": doc.get("source_latest"),
        "first_source": doc.get("source_first"),
        "hours_since_last_visit": (
            (now - last_seen_at).total_seconds() / 3600 if last_seen_at is not None else None
        ),
        "orders_30d": _window(doc, "o", now, 30),
        "orders_total": orders,
        "lifetime_value": spent,
        "average_order_value": spent / orders if orders else 0.0,
        "discount_orders": discounted,
        "discount_share": discounted / orders if orders else 0.0,
    }
