"""Browse abandonment: a shopper who viewed products, carted nothing and went idle.

The journey machinery needs a cart, so each profile that browses gets one *browse
pseudo-cart*: a :class:`~cartflow.engine.store.models.Cart` row of ``kind = browse`` with
the id :func:`browse_cart_id` (derived from the profile), whose items are the products
recently viewed (one of each, ``quantity`` 1, the price the shop showed). Its idle timer
is the cart idle timer; only ``on: browse.abandoned`` scenarios fit it
(:meth:`~cartflow.engine.scenario.model.Trigger.applies_to`). Send windows, quiet hours,
caps, consent, holdout, re-entry and priority work as for any cart.

Carting beats browsing: the moment a shopper carts something, the browse cart is
``superseded`` and its journey ends with reason ``superseded``
(:data:`cartflow.engine.outcomes.SUPERSEDED`); a cart journey that starts for the same
person ends it too (:func:`supersede`). An order ends it (``order.completed``; the browse
cart is then ``closed``, never ``ordered``: order counts read ordered carts). A view
after that, while the shopper has no open cart with items, opens browsing again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cartflow.engine.browsing import VIEWED, recent
from cartflow.engine.events import Event
from cartflow.engine.journeys import finish
from cartflow.engine.outcomes import SUPERSEDED
from cartflow.engine.store.models import Cart, Journey
from cartflow.engine.timers import CART_IDLE, cancel_timer, set_timer

#: The kind of a browse pseudo-cart (a shop cart is ``cart``).
BROWSE = "browse"
#: The products a browse cart holds at most (the newest viewed).
BROWSE_ITEMS = 5
#: Browse cart statuses that are still open (a journey may run or start).
OPEN = ("active", "abandoned")


def browse_cart_id(profile_id: str) -> str:
    return f"browse:{profile_id}"


def has_open_cart(session: Session, profile_id: str) -> bool:
    """Whether the shopper has a shop cart with something in it that is not paid for."""
    return (
        session.scalar(
            select(Cart.id)
            .where(
                Cart.profile_id == profile_id,
                Cart.kind == "cart",
                Cart.status.in_(OPEN),
                Cart.item_count > 0,
            )
            .limit(1)
        )
        is not None
    )


def apply_browse(
    session: Session,
    profile_id: str,
    event: Event,
    at: datetime,
    idle: timedelta,
    exits: list[tuple[str, str]],
) -> None:
    """Keep the profile's browse cart as ``event`` changes it: a view opens or refreshes
    it, a cart with items supersedes it, an order closes it."""
    if event.type == "product.viewed" and event.product is not None:
        _viewed(session, profile_id, at, idle)
    elif event.type == "cart.updated" and event.cart is not None and event.cart.items:
        _close(session, profile_id, SUPERSEDED, at, exits)
    elif event.type == "order.completed":
        # closed, not ordered: a browse cart is no order (order counts read ordered carts)
        _close(session, profile_id, "closed", at, exits)


def _viewed(session: Session, profile_id: str, at: datetime, idle: timedelta) -> None:
    if has_open_cart(session, profile_id):
        return  # carting beats browsing: the cart's own journey speaks
    cart = session.get(Cart, browse_cart_id(profile_id), with_for_update=True)
    items = _items(session, profile_id)
    if not items:
        return
    if cart is None:
        cart = Cart(
            id=browse_cart_id(profile_id),
            profile_id=profile_id,
            kind=BROWSE,
            status="active",
            currency=str(items[0]["currency"] or "USD"),
            url=None,
            items=[],
            value=Decimal(0),
            item_count=0,
            created_at=at,
            snapshot_at=at,
            last_activity_at=at,
        )
        session.add(cart)
    elif cart.status not in OPEN:
        if at <= cart.snapshot_at:
            return  # a late view from before it was closed opens nothing
        cart.status, cart.created_at, cart.abandoned_at = "active", at, None
    elif (
        cart.status == "abandoned" and at > cart.last_activity_at and not _in_journey(session, cart)
    ):
        cart.status = "active"  # its journey is over: a new visit may start another
    cart.items = [{k: v for k, v in item.items() if k != "currency"} for item in items]
    cart.item_count = len(items)
    cart.value = sum((Decimal(str(item["price"])) for item in items), Decimal(0))
    cart.currency = str(items[0]["currency"] or cart.currency)
    cart.url = str(items[0]["url"]) if items[0]["url"] else cart.url
    if at > cart.last_activity_at:
        cart.last_activity_at = at
    if cart.status == "active":
        set_timer(session, CART_IDLE, cart.id, cart.last_activity_at + idle)


def _in_journey(session: Session, cart: Cart) -> bool:
    return (
        session.scalar(
            select(Journey.id).where(Journey.cart_id == cart.id, Journey.status == "active")
        )
        is not None
    )


def _items(session: Session, profile_id: str) -> list[dict[str, Any]]:
    """The newest viewed products, as cart lines (one of each; a product without a price
    counts as 0, so the sum is what the shop showed)."""
    lines = []
    for product in recent(session, profile_id, VIEWED)[:BROWSE_ITEMS]:
        line = {
            "sku": product["sku"],
            "name": product["name"],
            "price": product["price"] if product["price"] is not None else 0.0,
            "quantity": 1,
            "url": product["url"],
            "image": product["image"],
            "category": product["category"],
            "currency": product["currency"],
        }
        if product["stock"] is not None:
            line["stock"] = product["stock"]
        lines.append(line)
    return lines


def open_browse_carts(session: Session, profile_id: str) -> list[Cart]:
    """The shopper's open browse carts: one, or more after a profile merge brought the
    other profile's along."""
    return list(
        session.scalars(
            select(Cart).where(
                Cart.profile_id == profile_id, Cart.kind == BROWSE, Cart.status.in_(OPEN)
            )
        )
    )


def _close(
    session: Session, profile_id: str, status: str, at: datetime, exits: list[tuple[str, str]]
) -> None:
    for cart in open_browse_carts(session, profile_id):
        cart.status = status
        cart.snapshot_at = max(cart.snapshot_at, at)  # views before this open nothing again
        cancel_timer(session, CART_IDLE, cart.id)
        reason = SUPERSEDED if status == SUPERSEDED else "order.completed"
        if (cart.id, reason) not in exits:
            exits.append((cart.id, reason))


def supersede(session: Session, profile_id: str, now: datetime) -> None:
    """A cart journey started for this shopper: the browse journey, if any, ends."""
    for cart in open_browse_carts(session, profile_id):
        cart.status = SUPERSEDED
        cancel_timer(session, CART_IDLE, cart.id)
        journey = session.scalar(
            select(Journey).where(Journey.cart_id == cart.id, Journey.status == "active")
        )
        if journey is not None:
            finish(session, journey, "exited", SUPERSEDED, now)
