"""Merging two profiles of one person (``customer.identified`` and any event carrying an
anonymous id and a customer id together).

Everything the source profile holds moves to the target: carts, visits, journeys,
deliveries, replies and decisions; the kept features (counts add up:
:func:`cartflow.engine.feature_doc.merged`); contacts (one row per address); consent (the answer
with the later ``at`` wins) and its proof log; attributes (:func:`merge_attributes`).
The source stays as a tombstone (``merged_into``). Journeys that now run twice for the
same intent are joined afterwards (:func:`cartflow.engine.intent.join_same_intent`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cartflow.engine import browsing
from cartflow.engine.features import merge_features
from cartflow.engine.store.models import (
    Cart,
    Consent,
    ConsentLog,
    Contact,
    Decision,
    Delivery,
    Journey,
    Profile,
    ShopperReply,
)
from cartflow.engine.store.models import Session as VisitSession

#: Rows that simply change hands.
_MOVED = (Cart, VisitSession, Journey, Delivery, ShopperReply, Decision, ConsentLog)


def merge_profiles(session: Session, *, source: Profile, target: Profile, now: datetime) -> None:
    browsing.move(session, source.id, target.id)  # recently viewed and carted join
    merge_features(session, source.id, target.id, now)
    for model in _MOVED:
        session.execute(
            update(model).where(model.profile_id == source.id).values(profile_id=target.id)
        )
    _merge_contacts(session, source, target)
    _merge_consent(session, source, target)
    for attr in ("timezone", "locale", "first_name"):
        if getattr(target, attr) is None:
            setattr(target, attr, getattr(source, attr))
    if source.last_seen_at and (
        target.last_seen_at is None or source.last_seen_at > target.last_seen_at
    ):
        target.last_seen_at = source.last_seen_at
    target.attributes = merge_attributes(target.attributes or {}, source.attributes or {})
    source.merged_into = target.id
    source.updated_at = now
    session.flush()


def merge_attributes(target: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """Two profiles' attributes as one person's.

    * ``*_count`` and ``total_*`` numbers add up;
    * ``first_*_at`` keeps the earlier, ``last_*_at`` the later — and a ``last_<x>_*``
      value (``last_order_id``) goes with the ``last_<x>_at`` that won;
    * anything else: the target's value, the source's when the target has none.
    """
    merged = dict(source) | dict(target)
    for key, value in source.items():
        mine = target.get(key)
        if mine is None:
            continue
        if (
            _number(mine)
            and _number(value)
            and (key.endswith("_count") or key.startswith("total_"))
        ):
            merged[key] = mine + value
        elif key.startswith("first_") and key.endswith("_at"):
            merged[key] = min(str(mine), str(value))
        elif key.startswith("last_") and key.endswith("_at") and str(value) > str(mine):
            merged[key] = value
            stem = key[: -len("_at")]
            for other, theirs in source.items():
                if other.startswith(f"{stem}_") and not other.endswith("_at"):
                    merged[other] = theirs
    return merged


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _merge_contacts(session: Session, source: Profile, target: Profile) -> None:
    mine = {
        (row.channel, row.address): row
        for row in session.scalars(select(Contact).where(Contact.profile_id == target.id))
    }
    for contact in session.scalars(select(Contact).where(Contact.profile_id == source.id)):
        kept = mine.get((contact.channel, contact.address))
        if kept is None:
            contact.profile_id = target.id
            continue
        if not contact.valid and kept.valid:  # a provider said it is dead: it stays dead
            kept.valid, kept.invalid_reason = False, contact.invalid_reason
        session.delete(contact)


def _merge_consent(session: Session, source: Profile, target: Profile) -> None:
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
