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

from cartflow.engine.contact_points import sms_refusal
from cartflow.engine.events import Event
from cartflow.engine.locks import PROFILE_LOCK
from cartflow.engine.merge import merge_profiles
from cartflow.engine.store.models import Consent, ConsentLog, Contact, Identity, Profile


def new_id() -> str:
    return uuid.uuid4().hex


def resolve_profile(session: Session, event: Event, now: datetime) -> Profile:
    """Find (or create) the profile behind the event's ids, linking new ids to it."""
    return resolve(session, event, now)[0]


def resolve(session: Session, event: Event, now: datetime) -> tuple[Profile, bool]:
    """The profile behind the event's ids, and whether another profile was merged into
    it just now.

    When an anonymous profile turns out to be a known shopper, it is merged into the
    known one (:func:`cartflow.engine.merge.merge_profiles`). An anonymous id whose
    profile already belongs to *another* customer is a shared device: nothing merges (two
    customers are never made one), the device's id moves to the event's customer.
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
    anonymous = found.get("anonymous_id")
    shared = (
        anonymous is not None
        and event.customer_id is not None
        and _other_customer(session, anonymous.id, event.customer_id)
    )
    profile = found.get("customer_id") or (None if shared else anonymous)
    if profile is None:
        profile = Profile(id=new_id(), created_at=now, updated_at=now, attributes={})
        session.add(profile)
        session.flush()
    merged = anonymous is not None and anonymous.id != profile.id and not shared
    if merged:
        assert anonymous is not None
        merge_profiles(session, source=anonymous, target=profile, now=now)
        session.execute(
            update(Identity)
            .where(Identity.profile_id == anonymous.id)
            .values(profile_id=profile.id)
        )
    elif shared and anonymous is not None and anonymous.id != profile.id:
        session.execute(
            update(Identity)
            .where(Identity.kind == "anonymous_id", Identity.value == event.anonymous_id)
            .values(profile_id=profile.id)
        )
    for kind, value in keys:
        if value and kind not in found:
            session.add(Identity(kind=kind, value=value, profile_id=profile.id, created_at=now))
    return profile, merged


def _other_customer(session: Session, profile_id: str, customer_id: str) -> bool:
    """Whether ``profile_id`` already belongs to a customer other than ``customer_id``."""
    return (
        session.scalar(
            select(Identity.value).where(
                Identity.profile_id == profile_id,
                Identity.kind == "customer_id",
                Identity.value != customer_id,
            )
        )
        is not None
    )


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
        refusal = None
        if channel == "sms":
            address = normalise_phone(address)
            refusal = sms_refusal(address)  # a fixed line: kept, never texted
        row = known.get((channel, address))
        if row is None:
            row = Contact(
                profile_id=profile.id,
                channel=channel,
                address=address,
                valid=refusal is None,
                invalid_reason=refusal,
                updated_at=now,
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
    *,
    recorded_at: datetime | None = None,
    evidence: str | None = None,
) -> bool:
    """Record consent as of ``at`` (the event's time): a late, older event never overrides
    a newer answer — withdrawn consent stays withdrawn. Every answer goes to the consent
    log (:class:`ConsentLog`, proof), the older one marked ``superseded``. ``known``: the
    profile's rows from :func:`consents_of`, kept up to date (saves a query per channel);
    ``recorded_at``: the engine's now (default ``at``); ``evidence``: the text or channel
    it came through, where known. Returns whether the answer now stands."""
    row = known.get(channel) if known is not None else session.get(Consent, (profile_id, channel))
    applies = row is None or at >= row.updated_at
    session.add(
        ConsentLog(
            profile_id=profile_id,
            channel=channel,
            granted=granted,
            source=source[:200],
            at=at,
            recorded_at=recorded_at or at,
            evidence=evidence,
            superseded=not applies,
        )
    )
    if row is None:
        row = Consent(
            profile_id=profile_id, channel=channel, granted=granted, source=source, updated_at=at
        )
        session.add(row)
        if known is not None:
            known[channel] = row
    elif applies:
        row.granted, row.source, row.updated_at = granted, source, at
    return applies
