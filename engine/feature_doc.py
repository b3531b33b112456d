"""The kept features document of one profile: how one event changes it, how two profiles'
documents become one person's. Pure functions over plain JSON values — no database — so
the live path (:mod:`cartflow.engine.features`), a merge
(:mod:`cartflow.engine.feature_merge`) and a backfill from stored events all go through
the same rules.

The document (all keys optional; a missing one reads as zero / nothing):

* ``sessions`` — visits ever; ``days[YYYY-MM-DD]`` — per-UTC-day buckets of the last
  :data:`KEEP_DAYS` days: ``s`` visits started, ``pv`` page views, ``prv`` product views,
  ``add`` / ``rm`` cart lines added / removed, ``r`` returns to a cart,
  ``c`` product views per category (at most :data:`MAX_CATEGORIES` a day);
* ``visits`` — the :data:`KEEP_VISITS` latest visits by start: ``{id: {at, pv, prv}}``;
* ``carts`` — the :data:`KEEP_CARTS` latest carts' last applied snapshot:
  ``{id: {at, items: {sku: quantity}, sid, closed}}`` (``sid``: the visit that last
  touched it; ``closed``: paid, nothing changes it after);
* ``orders`` — the :data:`KEEP_ORDERS` latest order ids and their times (an order counts
  once, however many profiles or deliveries it came through);
* devices, sources, the checkout step and the lifetime baseline
  (:mod:`cartflow.engine.features` explains ``base`` and ``seen``); ``back`` — the channel
  of the latest message that brought the shopper back (a click, or a push opened).

Ties are broken by value, never by arrival: of two first/latest values with the same time
the smaller/larger wins, of two baselines the larger figures — so two profiles' documents
merged later hold what one profile would have.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from cartflow.engine.events import Event

KEEP_DAYS = 31
KEEP_VISITS = 5
KEEP_CARTS = 10
MAX_CATEGORIES = 50
KEEP_ORDERS = 200
#: Event type → bucket counter it increments, and the visit's counter.
_COUNTED = {"page.viewed": "pv", "product.viewed": "prv"}

Doc = dict[str, Any]


def utc_day(at: datetime) -> str:
    return at.astimezone(UTC).date().isoformat()


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def trim_days(days: dict[str, Any]) -> None:
    if not days:
        return
    oldest = (date.fromisoformat(max(days)) - timedelta(days=KEEP_DAYS - 1)).isoformat()
    for stale in [d for d in days if d < oldest]:
        del days[stale]


def bump(doc: Doc, day: str, key: str, by: int = 1) -> None:
    days = doc.setdefault("days", {})
    days.setdefault(day, {})
    days[day][key] = days[day].get(key, 0) + by
    trim_days(days)


def keep_latest(entries: dict[str, Any], keep: int, key: Callable[[str], Any]) -> None:
    for stale in sorted(entries, key=key, reverse=True)[keep:]:
        del entries[stale]


def visit_order(visits: dict[str, Any]) -> Callable[[str], Any]:
    return lambda sid: (visits[sid]["at"], sid)


def latest_visit(doc: Doc) -> dict[str, Any] | None:
    visits = doc.get("visits") or {}
    return visits[max(visits, key=visit_order(visits))] if visits else None


def copy(doc: Doc) -> Doc:
    """A copy deep enough to change any part of ``doc`` without touching the original."""
    out = dict(doc)
    out["days"] = {
        d: {k: dict(n) if k == "c" else n for k, n in v.items()}
        for d, v in (doc.get("days") or {}).items()
    }
    out["visits"] = {k: dict(v) for k, v in (doc.get("visits") or {}).items()}
    out["carts"] = {
        k: {**v, "items": dict(v.get("items", {}))} for k, v in (doc.get("carts") or {}).items()
    }
    # shared with the stored document, an order added in place would leave it "unchanged"
    # to the ORM: an order changing nothing else was never written
    out["orders"] = dict(doc.get("orders") or {})
    return out


def add_visit(doc: Doc, session_id: str, started_at: datetime) -> None:
    """A new visit: counted once, in the day it started."""
    doc["sessions"] = doc.get("sessions", 0) + 1
    bump(doc, utc_day(started_at), "s")
    _known_visit(doc, session_id, started_at)


def _known_visit(doc: Doc, session_id: str, started_at: datetime) -> None:
    visits = doc.setdefault("visits", {})
    visits.setdefault(session_id, {"at": started_at.isoformat(), "pv": 0, "prv": 0})
    keep_latest(visits, KEEP_VISITS, visit_order(visits))


def update(
    doc: Doc,
    event: Event,
    at: datetime,
    *,
    new_visit: bool,
    visit_started_at: datetime | None,
) -> Doc:
    """``doc`` after ``event`` (a new document). ``new_visit``: the event opened a visit
    (its ``session_id`` was never seen); ``visit_started_at``: when the event's visit
    started, as kept in ``sessions`` (None without a session id)."""
    doc = copy(doc)
    day = utc_day(at)
    sid = event.session_id
    if sid and new_visit:
        add_visit(doc, sid, at)
    if event.type in _COUNTED:
        bump(doc, day, _COUNTED[event.type])
        if sid and visit_started_at is not None:
            _known_visit(doc, sid, visit_started_at)
            visit = doc["visits"].get(sid)
            if visit is not None:  # None: an old visit, fallen out of the kept ones
                visit[_COUNTED[event.type]] += 1
    if event.type == "product.viewed" and event.product is not None and event.product.category:
        _category(doc, day, event.product.category)
    if event.type == "session.started" and event.session is not None:
        for key in ("device", "source"):
            value = getattr(event.session, key)
            if value is not None:
                first_latest(doc, key, value, at)
    if event.type == "cart.updated" and event.cart is not None:
        _snapshot(doc, event, at, day)
    if event.type == "checkout.started":
        doc["checkout_reached"] = True
        if event.checkout is not None:
            step(doc, event.checkout.step, at)
    if event.type == "order.completed" and event.order is not None:
        _order(doc, event, at)
    if event.type == "customer.updated" and event.customer is not None:
        _baseline(doc, event, at)
    return doc


def _category(doc: Doc, day: str, category: str) -> None:
    days = doc.setdefault("days", {})
    counts = days.setdefault(day, {}).setdefault("c", {})
    if category in counts or len(counts) < MAX_CATEGORIES:
        counts[category] = counts.get(category, 0) + 1
    trim_days(days)


def first_latest(doc: Doc, key: str, value: str, at: datetime) -> None:
    first, latest = f"{key}_first", f"{key}_latest"
    if first not in doc or (at, value) < (parse_time(doc[f"{first}_at"]), doc[first]):
        doc[first], doc[f"{first}_at"] = value, at.isoformat()
    if latest not in doc or (at, value) > (parse_time(doc[f"{latest}_at"]), doc[latest]):
        doc[latest], doc[f"{latest}_at"] = value, at.isoformat()


def step(doc: Doc, step: str, at: datetime) -> None:
    if "checkout_step_at" not in doc or (at, step) > (
        parse_time(doc["checkout_step_at"]),
        doc["checkout_step"],
    ):
        doc["checkout_step"], doc["checkout_step_at"] = step, at.isoformat()


def _snapshot(doc: Doc, event: Event, at: datetime, day: str) -> None:
    """Lines added and removed against the cart's last applied snapshot (a SKU new or
    more of it: an add; gone or fewer: a removal), and a return: the cart touched in
    another visit than the one that touched it last, while it held something."""
    assert event.cart is not None
    carts = doc.setdefault("carts", {})
    entry = carts.get(event.cart.id)
    if entry is not None and (entry.get("closed") or at < parse_time(entry["at"])):
        return  # paid, or an older snapshot arriving late: as the cart itself
    items: dict[str, int] = {}
    for line in event.cart.items:
        items[line.sku] = items.get(line.sku, 0) + line.quantity
    before: dict[str, int] = entry["items"] if entry is not None else {}
    for sku in set(before) | set(items):
        delta = items.get(sku, 0) - before.get(sku, 0)
        if delta:
            bump(doc, day, "add" if delta > 0 else "rm")
    sid = event.session_id
    last_sid = entry.get("sid") if entry is not None else None
    if sid and last_sid and sid != last_sid and before:
        bump(doc, day, "r")
    carts[event.cart.id] = {"at": at.isoformat(), "items": items, "sid": sid or last_sid}
    keep_latest(carts, KEEP_CARTS, lambda cid: (carts[cid]["at"], cid))


def _order(doc: Doc, event: Event, at: datetime) -> None:
    assert event.order is not None
    order = event.order
    if order.cart_id:
        carts = doc.setdefault("carts", {})
        entry = carts.setdefault(order.cart_id, {"at": at.isoformat(), "items": {}, "sid": None})
        entry["closed"] = True
    orders = doc.setdefault("orders", {})
    if order.id in orders:
        return
    orders[order.id] = at.isoformat()
    keep_latest(orders, KEEP_ORDERS, lambda oid: (orders[oid], oid))
    extreme(doc, "order_first_at", at, min)
    extreme(doc, "order_last_at", at, max)
    base = doc.get("base")
    if base is None or at > parse_time(base["at"]):
        total = str(order.total or Decimal(0))
        entry = [at.isoformat(), total, bool(order.discount_code), order.id]
        doc["seen"] = [*doc.get("seen", []), entry]


def extreme(doc: Doc, key: str, at: datetime, pick: Callable[..., datetime]) -> None:
    doc[key] = (pick(parse_time(doc[key]), at) if doc.get(key) else at).isoformat()


def _baseline(doc: Doc, event: Event, at: datetime) -> None:
    figures = event.customer
    assert figures is not None
    first, last = figures.first_order_at, figures.last_order_at
    set_base(
        doc,
        {
            "at": at.isoformat(),
            "orders": figures.orders_count or 0,
            "spent": str(figures.total_spent or Decimal(0)),
            "discounted": figures.discount_orders_count or 0,
            "first_order_at": first.isoformat() if first else None,
            "last_order_at": last.isoformat() if last else None,
        },
    )


def _base_order(base: dict[str, Any]) -> tuple[Any, ...]:
    return (parse_time(base["at"]), base["orders"], Decimal(base["spent"]), base["discounted"])


def set_base(doc: Doc, base: dict[str, Any]) -> None:
    """``base`` stands unless the current one is later (or as late with larger figures);
    the orders up to its ``at`` are inside the shop's figures: only later ones stay."""
    current = doc.get("base")
    if current is not None and _base_order(base) <= _base_order(current):
        return
    doc["base"] = base
    doc["seen"] = [o for o in doc.get("seen", []) if parse_time(o[0]) > parse_time(base["at"])]


def came_back(doc: Doc, channel: str, at: datetime) -> Doc:
    """``doc`` after a message on ``channel`` brought the shopper back at ``at``."""
    doc = copy(doc)
    back = doc.get("back")
    if back is None or (at, channel) > (parse_time(back["at"]), back["channel"]):
        doc["back"] = {"channel": channel, "at": at.isoformat()}
    return doc
