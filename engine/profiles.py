"""Who an event is about: the profile behind its ids, its contact points and its consent.

An anonymous profile that turns out to be a known shopper is merged into the known one
(its carts, sessions, journeys, deliveries, contacts and consent move over); consent is
recorded as of the event's time, so a late, older answer never overrides a newer one.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import phonenumbers
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cartflow.engine import browsing
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
    browsing.move(session, source.id, target.id)  # recently viewed and carted join
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


def apply_contact(session: Session, profile: Profile, event: Event, now: datetime) -> None:
    contact = event.contact
    assert contact is not None
    for attr in ("timezone", "locale", "first_name"):
        value = getattr(contact, attr)
        if value:
            setattr(profile, attr, value)
    given = [
        (channel, address)
        for channel, address in (
            ("email", contact.email),
            ("sms", contact.phone),
            ("push", contact.push_token),
            ("messenger", contact.messenger),
        )
        if address
    ]
    if not given:
        return
    # the shopper's contacts in one query, not one per channel
    known = {
        (row.channel, row.address): row
        for row in session.scalars(select(Contact).where(Contact.profile_id == profile.id))
    }
    for channel, raw in given:
        address = raw.strip().lower() if channel == "email" else raw.strip()
        if channel == "sms":
            address = normalise_phone(address)
        row = known.get((channel, address))
        if row is None:
            row = Contact(
                profile_id=profile.id, channel=channel, address=address, valid=True, updated_at=now
            )
            session.add(row)
            known[(channel, address)] = row
        else:
            row.updated_at = now


def normalise_phone(raw: str) -> str:
    """A phone number in E.164 when it parses as a possible one; as given otherwise."""
    try:
        number = phonenumbers.parse(raw, None)
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    return raw


def consents_of(session: Session, profile_id: str) -> dict[str, Consent]:
    """The shopper's consent rows by channel, in one query (pass to :func:`set_consent`)."""
    query = select(Consent).where(Consent.profile_id == profile_id)
    return {row.channel: row for row in session.scalars(query)}


def set_consent(
    session: Session,
    profile_id: str,
    channel: str,
    granted: bool,
    source: str,
    at: datetime,
    known: dict[str, Consent] | None = None,
) -> None:
    """Record consent as of ``at`` (the event's time): a late, older event never overrides
    a newer answer — withdrawn consent stays withdrawn. ``known``: the profile's rows from
    :func:`consents_of`, kept up to date (saves a query per channel)."""
    row = known.get(channel) if known is not None else session.get(Consent, (profile_id, channel))
    if row is None:
        row = Consent(
            profile_id=profile_id, channel=channel, granted=granted, source=source, updated_at=at
        )
        session.add(row)
        if known is not None:
            known[channel] = row
    elif at >= row.updated_at:
        row.granted, row.source, row.updated_at = granted, source, at
