"""Carts as events change them: snapshots (``cart.updated``), checkout and orders.

Rules that protect shoppers:

* ``ordered`` is sticky: a late ``cart.updated`` never resurrects a paid cart, and an
  ``order.completed`` for a cart we have not seen yet creates it already paid.
* An older snapshot arriving after a newer one is ignored (per cart, by event time).
* Every activity moves the cart's one idle timer forward; it is never multiplied.

What an event ends is appended to the caller's ``exits`` (:class:`~cartflow.engine.state.Applied`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from cartflow.engine.events import Event
from cartflow.engine.store.models import Cart, Journey, Profile
from cartflow.engine.timers import CART_IDLE, cancel_timer, set_timer

#: Profile attributes the engine keeps for itself (cart-less orders, see _paid_before):
#: not a visitor's features, so conditions and templates never see them.
BOOKKEEPING_ATTRIBUTES = frozenset({"last_order_at", "last_order_id"})
#: The journeys an event ends, as ``(cart_id, reason)``.
Exits = list[tuple[str, str]]


def open_carts(session: Session, profile_id: str) -> list[Cart]:
    return list(
        session.scalars(
            select(Cart).where(
                Cart.profile_id == profile_id, Cart.status.in_(("active", "abandoned"))
            )
        )
    )


def carts_of(session: Session, profile_id: str, cart_id: str | None) -> list[Cart]:
    if cart_id:
        cart = session.get(Cart, cart_id, with_for_update=True)
        return [cart] if cart is not None else []
    return open_carts(session, profile_id)


def apply_checkout(
    session: Session,
    profile_id: str,
    cart_id: str | None,
    at: datetime,
    idle: timedelta,
    step: str | None = None,
) -> None:
    """``checkout.started`` is activity on the cart (every open cart without a cart id);
    its ``checkout.step`` is recorded as the cart's latest step, by event time."""
    for cart in carts_of(session, profile_id, cart_id):
        if (
            step
            and cart.status != "ordered"
            and (cart.checkout_step_at is None or at >= cart.checkout_step_at)
        ):
            cart.checkout_step, cart.checkout_step_at = step, at
        if cart.status in ("active", "abandoned") and at > cart.last_activity_at:
            cart.last_activity_at = at
            if cart.status == "active":
                set_timer(session, CART_IDLE, cart.id, at + idle)


def apply_cart(
    session: Session,
    profile: Profile,
    event: Event,
    at: datetime,
    now: datetime,
    idle: timedelta,
    exits: Exits,
) -> None:
    snapshot = event.cart
    assert snapshot is not None
    cart = session.get(Cart, snapshot.id, with_for_update=True)
    items = [item.model_dump(mode="json", exclude_none=True) for item in snapshot.items]
    if cart is None:
        cart = Cart(
            id=snapshot.id,
            profile_id=profile.id,
            status="active",
            currency=snapshot.currency,
            url=snapshot.url,
            items=[],
            value=Decimal(0),
            item_count=0,
            created_at=at,
            snapshot_at=at,
            last_activity_at=at,
        )
        session.add(cart)
    elif cart.status == "ordered":
        return  # sticky: a paid cart is never resurrected
    elif at < cart.snapshot_at:
        return  # a late, older snapshot: the newer one stands
    cart.snapshot_at = at
    cart.last_activity_at = max(cart.last_activity_at, at)
    cart.currency = snapshot.currency
    cart.url = snapshot.url or cart.url
    cart.items = items
    cart.value = snapshot.value
    cart.item_count = sum(item.quantity for item in snapshot.items)
    paid_by = _paid_before(profile, at)
    if paid_by is not None:  # older than an order that paid for "their cart"
        _mark_ordered(session, cart, paid_by, at)
        exits.append((cart.id, "order.completed"))
        return
    if not snapshot.items:
        if cart.status != "emptied":
            exits.append((cart.id, "cart.emptied"))
        cart.status = "emptied"
        cancel_timer(session, CART_IDLE, cart.id)
        return
    if cart.status == "emptied":
        cart.status = "active"
    if cart.status == "abandoned":
        exits.append((cart.id, "cart.updated"))
    else:
        set_timer(session, CART_IDLE, cart.id, cart.last_activity_at + idle)


def apply_order(
    session: Session, profile: Profile, event: Event, at: datetime, now: datetime, exits: Exits
) -> None:
    order = event.order
    assert order is not None
    carts = carts_of(session, profile.id, order.cart_id)
    if order.cart_id and not carts:
        # The order overtook its cart: record the cart as paid so nothing resurrects it.
        cart = Cart(
            id=order.cart_id,
            profile_id=profile.id,
            status="ordered",
            order_id=order.id,
            ordered_at=at,
            currency=order.currency or "USD",
            url=None,
            items=[],
            value=order.total or Decimal(0),
            item_count=0,
            created_at=at,
            snapshot_at=at,
            last_activity_at=at,
        )
        session.add(cart)
        carts = [cart]
    for cart in carts:
        if cart.status == "ordered":
            continue
        _mark_ordered(session, cart, order.id, at)
        exits.append((cart.id, "order.completed"))
    if not order.cart_id:
        # "They paid for their cart": a snapshot older than this order, arriving late,
        # must not bring a cart back (architecture §3.2).
        attributes = dict(profile.attributes or {})
        previous = attributes.get("last_order_at")
        if previous is None or at.isoformat() > str(previous):
            attributes["last_order_at"] = at.isoformat()
            attributes["last_order_id"] = order.id
            profile.attributes = attributes
    # Whoever just bought stops hearing about any other cart too.
    for (cart_id,) in session.execute(
        select(Journey.cart_id).where(Journey.profile_id == profile.id, Journey.status == "active")
    ):
        if (cart_id, "order.completed") not in exits:
            exits.append((cart_id, "order.completed"))


def _mark_ordered(session: Session, cart: Cart, order_id: str, at: datetime) -> None:
    cart.status = "ordered"
    cart.order_id = order_id
    cart.ordered_at = at
    cancel_timer(session, CART_IDLE, cart.id)


def _paid_before(profile: Profile, at: datetime) -> str | None:
    """The id of a cart-less order placed at or after ``at``, if any."""
    last = (profile.attributes or {}).get("last_order_at")
    if last is not None and datetime.fromisoformat(str(last)) >= at:
        return str((profile.attributes or {}).get("last_order_id") or "")
    return None
