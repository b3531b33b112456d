"""Apply events to state: profiles, identities, contacts, consent, sessions, carts.

:func:`apply_event` is the one entry: it finds the profile behind the event
(:mod:`cartflow.engine.profiles`: identities, merges, contacts, consent), keeps the
visit (last seen, sessions) here, and hands carts, checkout and orders to
:mod:`cartflow.engine.carts`, whose rules protect shoppers: a paid cart stays paid, a late,
older snapshot never overrides a newer one, and a cart has one idle timer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cartflow.engine.browse_abandonment import apply_browse
from cartflow.engine.browsing import apply_browsing

# An ``X as X`` import re-exports a name defined here before (still imported from here).
from cartflow.engine.carts import BOOKKEEPING_ATTRIBUTES as BOOKKEEPING_ATTRIBUTES
from cartflow.engine.carts import apply_cart, apply_checkout, apply_order, open_carts
from cartflow.engine.engagement import ENGAGEMENT_EVENTS, apply_engagement
from cartflow.engine.events import Event
from cartflow.engine.features import apply_features
from cartflow.engine.intent import join_same_intent
from cartflow.engine.profiles import apply_contact, consents_of, resolve
from cartflow.engine.profiles import new_id as new_id
from cartflow.engine.profiles import resolve_profile as resolve_profile
from cartflow.engine.profiles import set_consent as set_consent
from cartflow.engine.store.models import Consent
from cartflow.engine.store.models import Session as VisitSession

#: Event types that mean "the shopper is here right now".
ACTIVITY = frozenset(
    {"session.started", "page.viewed", "product.viewed", "cart.updated", "checkout.started"}
)


@dataclass
class Applied:
    """What applying one event changed, for the caller to act on (exits, logs)."""

    profile_id: str
    exits: list[tuple[str, str]] = field(default_factory=list)  # (cart_id, reason)


def apply_event(session: Session, event: Event, *, now: datetime, idle: timedelta) -> Applied:
    """Apply one event inside the caller's transaction. ``idle`` is the shortest trigger
    idle time across scenarios: when the cart's idle timer first looks."""
    at = event.at or now
    profile, merged = resolve(session, event, now)
    applied = Applied(profile_id=profile.id)
    profile.updated_at = now
    if event.type in ACTIVITY and (profile.last_seen_at is None or at > profile.last_seen_at):
        profile.last_seen_at = at
    if event.contact is not None:
        apply_contact(session, profile, event, now)
    if event.consent:
        known = consents_of(session, profile.id)
        evidence = _evidence(event)
        for channel, granted in event.consent.items():
            source = f"event:{event.id}"
            set_consent(
                session,
                profile.id,
                channel,
                granted,
                source,
                at,
                known,
                recorded_at=now,
                evidence=evidence,
            )
        if event.type == "consent.updated" and not any(
            c.granted
            for c in session.scalars(select(Consent).where(Consent.profile_id == profile.id))
        ):
            for cart in open_carts(session, profile.id):
                applied.exits.append((cart.id, "unsubscribed"))
    if merged:  # two journeys may now run for one intent: the later joins the earlier
        join_same_intent(session, profile.id, now)
    new_visit, started_at = (
        _touch_session(session, profile.id, event.session_id, at)
        if event.session_id
        else (False, None)
    )
    apply_features(
        session, profile.id, event, at, now, new_visit=new_visit, visit_started_at=started_at
    )

    apply_browsing(session, profile.id, event, at)
    apply_browse(session, profile.id, event, at, idle, applied.exits)
    if event.type == "cart.updated":
        assert event.cart is not None
        apply_cart(session, profile, event, at, now, idle, applied.exits)
    elif event.type == "checkout.started":
        cart_id = event.cart.id if event.cart else None
        step = event.checkout.step if event.checkout else None
        apply_checkout(session, profile.id, cart_id, at, idle, step)
    elif event.type == "order.completed":
        assert event.order is not None
        apply_order(session, profile, event, at, now, applied.exits)
    elif event.type in ENGAGEMENT_EVENTS:
        apply_engagement(session, profile.id, event, now)
    return applied


def _touch_session(
    session: Session, profile_id: str, session_id: str, at: datetime
) -> tuple[bool, datetime]:
    """Keep the visit; whether it is a new one, and when it started."""
    row = session.get(VisitSession, session_id)
    if row is None:
        session.add(
            VisitSession(id=session_id, profile_id=profile_id, started_at=at, last_seen_at=at)
        )
        return True, at
    if at > row.last_seen_at:
        row.last_seen_at = at
    return False, row.started_at


def _evidence(event: Event) -> str:
    """What the consent came through: the event's type and, when its producer says,
    where (an SMS reply's keyword, a checkbox's wording: the event's ``source``)."""
    said = (event.model_extra or {}).get("source")
    return f"{event.type}; {said}"[:2000] if said else event.type
