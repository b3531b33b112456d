"""One lock order for everything that touches a shopper, so PostgreSQL never deadlocks
two workers against each other: profile → cart → journey → (deliveries, timers).

The profile is locked ``FOR NO KEY UPDATE``: it serialises everything about one shopper
(event application, abandonment, frequency caps, re-entry) without conflicting with the
``KEY SHARE`` locks that inserting a row referencing the profile takes. SQLite ignores
these (its transactions are serialised whole by ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from cartflow.engine.store.models import Cart, Journey, Profile

_Row = TypeVar("_Row")

#: ``FOR NO KEY UPDATE`` on PostgreSQL.
PROFILE_LOCK = {"key_share": True}


def lock_profile(session: Session, profile_id: str) -> Profile | None:
    return keep(session, session.get(Profile, profile_id, with_for_update=PROFILE_LOCK))


def keep(session: Session, row: _Row) -> _Row:
    """Keep a locked row loaded for the rest of the transaction: the session's identity
    map holds objects weakly, and a later ``session.get`` of one nobody referenced would
    query the database again."""
    if row is not None:
        session.info.setdefault("cartflow_locked", []).append(row)
    return row


def lock_for_cart(session: Session, cart_id: str) -> tuple[Profile | None, Cart | None]:
    """Lock the cart's shopper, then the cart."""
    profile_id = session.scalar(select(Cart.profile_id).where(Cart.id == cart_id))
    if profile_id is None:
        return None, None
    profile = lock_profile(session, profile_id)
    return profile, keep(session, session.get(Cart, cart_id, with_for_update=True))


def lock_journey(session: Session, journey_id: str) -> Journey | None:
    """Lock the journey alone, for work that touches only it and what comes after it in
    the lock order (its deliveries, timers, decisions): never a profile or cart after."""
    return session.get(Journey, journey_id, with_for_update=True)


def lock_for_journey(session: Session, journey_id: str) -> Journey | None:
    """Lock the journey's shopper, its cart, then the journey."""
    row = session.execute(
        select(Journey.profile_id, Journey.cart_id).where(Journey.id == journey_id)
    ).first()
    if row is None:
        return None
    lock_profile(session, row[0])
    keep(session, session.get(Cart, row[1], with_for_update=True))
    return session.get(Journey, journey_id, with_for_update=True)


def lock_for_answer(session: Session, journey_id: str, status: str) -> Journey | None:
    """Locks to record a provider's answer (``status``) to the journey's send. A failure
    may change the shopper's contacts and consents (provider signals), which needs the
    whole order; any other answer touches only the journey and what follows it in the
    order (its delivery, timer, decisions), so the shopper's events are not held up."""
    if status in ("permanent", "retryable"):  # a retry may have been the last one
        return lock_for_journey(session, journey_id)
    return lock_journey(session, journey_id)
