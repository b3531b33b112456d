"""The context conditions and templates see, built as :mod:`cartflow.engine.context_schema`
declares it: ``cart``, ``visitor``, ``customer``, ``session``, ``journey``, ``now``,
``segments`` (the table in docs/scenarios.md is generated from the same declaration).

A segment that cannot be evaluated counts as "not in the segment" and is listed under
:data:`FAILED` in the context, for the caller to record (fail closed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_zones
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from cartflow.engine import context_schema as schema
from cartflow.engine.browsing import CARTED, VIEWED, recent
from cartflow.engine.carts import BOOKKEEPING_ATTRIBUTES
from cartflow.engine.condition_failures import ConditionKind, Failed, evaluate
from cartflow.engine.features import read_features
from cartflow.engine.scenario.loader import Config
from cartflow.engine.store.models import Cart, Contact, Identity, Journey, Profile
from cartflow.engine.store.models import Session as VisitSession
from cartflow.engine.timing import zone_or_default


def recipient_zone(session: Session, profile: Profile, default: str) -> ZoneInfo:
    """The shopper's time zone: the profile's, else the phone number's region when it has
    a single zone (+380 → Europe/Kyiv; not +7 or +1), else the shop default."""
    if profile.timezone:
        return zone_or_default(profile.timezone, default)
    phone = session.scalar(
        select(Contact.address)
        .where(Contact.profile_id == profile.id, Contact.channel == "sms")
        .order_by(Contact.updated_at.desc())
        .limit(1)
    )
    if phone:
        try:
            zones = phone_zones.time_zones_for_number(phonenumbers.parse(phone, None))
        except phonenumbers.NumberParseException:
            zones = ()
        if len(zones) == 1 and zones[0] != "Etc/Unknown":
            return zone_or_default(zones[0], default)
    return zone_or_default(None, default)


#: Context key of the conditions that could not be evaluated while it was built
#: (:class:`~cartflow.engine.condition_failures.Failed`); internal, like every name
#: starting with ``_``.
FAILED = "_failed"


def cart_view(cart: Cart) -> dict[str, Any]:
    return schema.view(
        schema.CART,
        {
            "id": cart.id,
            "value": float(cart.value),
            "currency": cart.currency,
            "item_count": cart.item_count,
            "items": cart.items,
            "url": cart.url,
            "status": cart.status,
            "created_at": cart.created_at,
            "checkout_step": cart.checkout_step,
            "kind": cart.kind,
        },
    )


def build_context(
    session: Session,
    config: Config,
    profile: Profile,
    cart: Cart,
    now: datetime,
    journey: Journey | None = None,
) -> dict[str, Any]:
    defaults = config.settings.defaults
    zone = recipient_zone(session, profile, defaults.timezone)
    kept = read_features(session, profile.id, now, profile.last_seen_at)
    sessions = kept["sessions"]
    known = session.scalar(
        select(exists().where(Identity.profile_id == profile.id, Identity.kind == "customer_id"))
    )
    features = {
        k: v for k, v in (profile.attributes or {}).items() if k not in BOOKKEEPING_ATTRIBUTES
    }
    latest = session.scalar(
        select(VisitSession)
        .where(VisitSession.profile_id == profile.id)
        # the visit started last (as late: the larger id), as visitor.*_session counts it
        .order_by(VisitSession.started_at.desc(), VisitSession.id.desc())
        .limit(1)
    )
    in_cart = [str(item.get("sku")) for item in cart.items or []]
    context: dict[str, Any] = {
        "cart": cart_view(cart),
        "visitor": schema.view(
            schema.VISITOR,
            {
                **{k: kept[k] for k in schema.VISITOR_FEATURES},
                "last_seen_at": profile.last_seen_at,
                "is_known": bool(known),
                "recently_viewed": recent(session, profile.id, VIEWED, in_cart),
                "recently_carted": recent(session, profile.id, CARTED, in_cart),
            },
            features,
        ),
        "customer": schema.view(
            schema.CUSTOMER,
            {
                "id": profile.id,
                "first_name": profile.first_name,
                "locale": profile.locale or defaults.locale,
                **{k: kept[k] for k in schema.CUSTOMER_FEATURES},
            },
        ),
        "session": schema.view(
            schema.SESSION,
            {
                "id": latest.id if latest else None,
                "started_at": latest.started_at if latest else None,
                "last_seen_at": latest.last_seen_at if latest else None,
                "count": sessions,
            },
        ),
        "journey": schema.view(
            schema.JOURNEY,
            {
                "scenario": journey.scenario if journey else None,
                "step": journey.step_index if journey else None,
                "group": journey.group if journey else None,
                "started_at": journey.started_at if journey else None,
                "sent": (journey.state or {}).get("sent", 0) if journey else 0,
            },
        ),
        "now": now.astimezone(zone),
    }
    segments: set[str] = set()
    failed: list[Failed] = []
    for name, condition in config.segments.items():
        held = evaluate(
            condition, context, kind=ConditionKind.SEGMENT, which=name, version=config.version
        )
        if isinstance(held, Failed):
            failed.append(held)
        elif held:
            segments.add(name)
    context["segments"] = segments
    context[FAILED] = failed
    return context
