"""Apply events to state: profiles, identities, contacts, consent, sessions, carts.

Rules that protect shoppers:

* ``ordered`` is sticky: a late ``cart.updated`` never resurrects a paid cart, and an
  ``order.completed`` for a cart we have not seen yet creates it already paid.
* An older snapshot arriving after a newer one is ignored (per cart, by event time).
* Every activity moves the cart's one idle timer forward; it is never multiplied.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cartflow.engine.events import Event
from cartflow.engine.locks import PROFILE_LOCK
from cartflow.engine.store.models import (
    Cart,
    Consent,
    Contact,
    Delivery,
    Identity,
    Journey,
    Profile,
)
from cartflow.engine.store.models import Session as VisitSession
from cartflow.engine.timers import CART_IDLE, cancel_timer, set_timer

#: Event types that mean "the shopper is here right now".
ACTIVITY = frozenset(
    {"session.started", "page.viewed", "product.viewed", "cart.updated", "checkout.started"}
)

#: Profile attributes the engine keeps for itself (cart-less orders, see _paid_before):
#: not a visitor's features, so conditions and templates never see them.
BOOKKEEPING_ATTRIBUTES = frozenset({"last_order_at", "last_order_id"})


@dataclass
class Applied:
    """What applying one event changed, for the caller to act on (exits, logs)."""

    profile_id: str
    exits: list[tuple[str, str]] = field(default_factory=list)  # (cart_id, reason)


def new_id() -> str:
    return uuid.uuid4().hex


def resolve_profile(session: Session, event: Event, now: datetime) -> Profile:
    """Find (or create) the profile behind the event's ids, linking new ids to it.

    When an anonymous profile and a known one turn out to be the same person, the
    anonymous one is merged into the known one (its carts, sessions, contacts and
    consent move over; a journey already running on a cart keeps running).
    """
    keys = [("customer_id", event.customer_id), ("anonymous_id", event.anonymous_id)]
    found: dict[str, Profile] = {}
    for kind, value in keys:
        if not value:
            continue
        identity = session.get(Identity, (kind, value))
        if identity is not None:
            profile = session.get(Profile, identity.profile_id, with_for_update=PROFILE_LOCK)
            if profile is not None:
                found[kind] = profile
    profile = found.get("customer_id") or found.get("anonymous_id")
    if profile is None:
        profile = Profile(id=new_id(), created_at=now, updated_at=now, attributes={})
        session.add(profile)
        session.flush()
    anonymous = found.get("anonymous_id")
    if anonymous is not None and anonymous.id != profile.id:
        _merge(session, source=anonymous, target=profile, now=now)
    for kind, value in keys:
        if value and kind not in found:
            session.add(Identity(kind=kind, value=value, profile_id=profile.id, created_at=now))
    if anonymous is not None and anonymous.id != profile.id and event.anonymous_id:
        session.execute(
            update(Identity)
            .where(Identity.profile_id == anonymous.id)
            .values(profile_id=profile.id)
        )
    return profile


def _merge(session: Session, *, source: Profile, target: Profile, now: datetime) -> None:
    for model in (Cart, VisitSession, Journey, Delivery):
        session.execute(
            update(model).where(model.profile_id == source.id).values(profile_id=target.id)
        )
    for contact in session.scalars(select(Contact).where(Contact.profile_id == source.id)):
        exists = session.scalar(
            select(Contact.id).where(
                Contact.profile_id == target.id,
                Contact.channel == contact.channel,
                Contact.address == contact.address,
            )
        )
        if exists is None:
            contact.profile_id = target.id
        else:
            session.delete(contact)
    for consent in session.scalars(select(Consent).where(Consent.profile_id == source.id)):
        mine = session.get(Consent, (target.id, consent.channel))
        if mine is None:
            session.add(
                Consent(
                    profile_id=target.id,
                    channel=consent.channel,
                    granted=consent.granted,
                    source=consent.source,
                    updated_at=consent.updated_at,
                )
            )
        elif consent.updated_at > mine.updated_at:
            mine.granted, mine.source, mine.updated_at = (
                consent.granted,
                consent.source,
                consent.updated_at,
            )
        session.delete(consent)
    for attr in ("timezone", "locale", "first_name"):
        if getattr(target, attr) is None:
            setattr(target, attr, getattr(source, attr))
    if source.last_seen_at and (
        target.last_seen_at is None or source.last_seen_at > target.last_seen_at
    ):
        target.last_seen_at = source.last_seen_at
    source.merged_into = target.id
    source.updated_at = now
    session.flush()


def apply_event(session: Session, event: Event, *, now: datetime, idle: timedelta) -> Applied:
    """Apply one event inside the caller's transaction. ``idle`` is the shortest trigger
    idle time across scenarios: when the cart's idle timer first looks."""
    at = event.at or now
    profile = resolve_profile(session, event, now)
    applied = Applied(profile_id=profile.id)
    profile.updated_at = now
    if event.type in ACTIVITY and (profile.last_seen_at is None or at > profile.last_seen_at):
        profile.last_seen_at = at
    if event.contact is not None:
        _apply_contact(session, profile, event, now)
    if event.consent:
        for channel, granted in event.consent.items():
            set_consent(session, profile.id, channel, granted, f"event:{event.id}", at)
        if event.type == "consent.updated" and not any(
            c.granted
            for c in session.scalars(select(Consent).where(Consent.profile_id == profile.id))
        ):
            for cart in _open_carts(session, profile.id):
                applied.exits.append((cart.id, "unsubscribed"))
    if event.session_id:
        _touch_session(session, profile.id, event.session_id, at)

    if event.type == "cart.updated":
        assert event.cart is not None
        _apply_cart(session, profile, event, at, now, idle, applied)
    elif event.type == "checkout.started":
        for cart in _carts_of(session, profile.id, event.cart.id if event.cart else None):
            if cart.status in ("active", "abandoned") and at > cart.last_activity_at:
                cart.last_activity_at = at
                if cart.status == "active":
                    set_timer(session, CART_IDLE, cart.id, at + idle)
    elif event.type == "order.completed":
        assert event.order is not None
        _apply_order(session, profile, event, at, now, applied)
    return applied


def _apply_contact(session: Session, profile: Profile, event: Event, now: datetime) -> None:
    contact = event.contact
    assert contact is not None
    for attr in ("timezone", "locale", "first_name"):
        value = getattr(contact, attr)
        if value:
            setattr(profile, attr, value)
    for channel, address in (
        ("email", contact.email),
        ("sms", contact.phone),
        ("push", contact.push_token),
    ):
        if not address:
            continue
        address = address.strip().lower() if channel == "email" else address.strip()
        if channel == "sms":
            address = _normalise_phone(address)
        row = session.scalar(
            select(Contact).where(
                Contact.profile_id == profile.id,
                Contact.channel == channel,
                Contact.address == address,
            )
        )
        if row is None:
            session.add(
                Contact(
                    profile_id=profile.id,
                    channel=channel,
                    address=address,
                    valid=True,
                    updated_at=now,
                )
            )
        else:
            row.updated_at = now


def _normalise_phone(raw: str) -> str:
    import phonenumbers

    try:
        number = phonenumbers.parse(raw, None)
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    return raw


def set_consent(
    session: Session, profile_id: str, channel: str, granted: bool, source: str, at: datetime
) -> None:
    """Record consent as of ``at`` (the event's time): a late, older event never overrides
    a newer answer — withdrawn consent stays withdrawn."""
    row = session.get(Consent, (profile_id, channel))
    if row is None:
        session.add(
            Consent(
                profile_id=profile_id,
                channel=channel,
                granted=granted,
                source=source,
                updated_at=at,
            )
        )
    elif at >= row.updated_at:
        row.granted, row.source, row.updated_at = granted, source, at


def _touch_session(session: Session, profile_id: str, session_id: str, at: datetime) -> None:
    row = session.get(VisitSession, session_id)
    if row is None:
        session.add(
            VisitSession(id=session_id, profile_id=profile_id, started_at=at, last_seen_at=at)
        )
    elif at > row.last_seen_at:
        row.last_seen_at = at


def _open_carts(session: Session, profile_id: str) -> list[Cart]:
    return list(
        session.scalars(
            select(Cart).where(
                Cart.profile_id == profile_id, Cart.status.in_(("active", "abandoned"))
            )
        )
    )


def _carts_of(session: Session, profile_id: str, cart_id: str | None) -> list[Cart]:
    if cart_id:
        cart = session.get(Cart, cart_id, with_for_update=True)
        return [cart] if cart is not None else []
    return _open_carts(session, profile_id)


def _apply_cart(
    session: Session,
    profile: Profile,
    event: Event,
    at: datetime,
    now: datetime,
    idle: timedelta,
    applied: Applied,
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
        applied.exits.append((cart.id, "order.completed"))
        return
    if not snapshot.items:
        if cart.status != "emptied":
            applied.exits.append((cart.id, "cart.emptied"))
        cart.status = "emptied"
        cancel_timer(session, CART_IDLE, cart.id)
        return
    if cart.status == "emptied":
        cart.status = "active"
    if cart.status == "abandoned":
        applied.exits.append((cart.id, "cart.updated"))
    else:
        set_timer(session, CART_IDLE, cart.id, cart.last_activity_at + idle)


def _apply_order(
    session: Session, profile: Profile, event: Event, at: datetime, now: datetime, applied: Applied
) -> None:
    order = event.order
    assert order is not None
    carts = _carts_of(session, profile.id, order.cart_id)
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
        applied.exits.append((cart.id, "order.completed"))
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
        if (cart_id, "order.completed") not in applied.exits:
            applied.exits.append((cart_id, "order.completed"))


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
