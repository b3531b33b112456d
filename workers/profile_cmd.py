"""``cartflow profile ID``: one shopper as cartflow sees them — the profile, its features
and segments, journeys, recent deliveries, recently viewed products and contacts.

``ID`` is a profile id, a shop customer id or an anonymous id. Contacts are masked
(``a***@e***.com``, ``+7******4567``) unless ``--show-pii``; ``--json`` prints one JSON
object. An unknown id is a clear message and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cartflow.engine.browsing import CARTED, VIEWED, recent
from cartflow.engine.carts import BOOKKEEPING_ATTRIBUTES
from cartflow.engine.context import FAILED, build_context
from cartflow.engine.scenario.loader import Config, ConfigError, load_config
from cartflow.engine.store.models import Cart, Contact, Delivery, Identity, Journey, Profile
from cartflow.workers.errors import CliError


class UnknownProfile(CliError):
    """No profile has that id (profile, customer or anonymous): exit 1."""

    code = 1


#: How many of the latest deliveries are shown.
RECENT_DELIVERIES = 10


def mask(channel: str, address: str) -> str:
    """An address with only enough left to recognise it."""
    if channel == "email" and "@" in address:
        local, _, domain = address.partition("@")
        name, dot, tld = domain.rpartition(".")
        shown_domain = f"{name[:1]}***{dot}{tld}" if dot else f"{domain[:1]}***"
        return f"{local[:1]}***@{shown_domain}"
    if channel == "sms" and len(address) > 6:
        return address[:2] + "*" * (len(address) - 6) + address[-4:]
    return address[:4] + "***" if len(address) > 4 else "***"


def find_profile(session: Session, key: str) -> Profile | None:
    profile = session.get(Profile, key)
    if profile is None:
        owner = session.scalar(select(Identity.profile_id).where(Identity.value == key).limit(1))
        profile = session.get(Profile, owner) if owner else None
    while profile is not None and profile.merged_into:  # follow merges to the live one
        profile = session.get(Profile, profile.merged_into)
    return profile


def evaluated_segments(
    session: Session, config: Config | None, profile: Profile, now: datetime
) -> dict[str, Any]:
    """The segments of the loaded configuration evaluated as the engine does
    (:func:`~cartflow.engine.context.build_context`) for the profile's latest cart; none
    without a cart or a configuration. A segment that cannot be evaluated is listed with
    its reason (the engine counts it out: fail closed)."""
    cart = session.scalar(
        select(Cart)
        .where(Cart.profile_id == profile.id)
        .order_by(Cart.last_activity_at.desc(), Cart.id)
        .limit(1)
    )
    if config is None or cart is None:
        why = "no configuration loaded" if config is None else "no cart to evaluate them on"
        return {"cart": None, "in": [], "failed": [], "note": why}
    context = build_context(session, config, profile, cart, now)
    return {
        "cart": cart.id,
        "in": sorted(context["segments"]),
        "failed": [{"segment": f.which, "reason": f.describe()} for f in context[FAILED]],
        "note": None,
    }


def describe(
    session: Session,
    profile: Profile,
    *,
    show_pii: bool,
    config: Config | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Everything ``cartflow profile`` shows, as plain data."""
    identities = session.execute(
        select(Identity.kind, Identity.value).where(Identity.profile_id == profile.id)
    ).all()
    contacts = [
        {
            "channel": c.channel,
            "address": c.address if show_pii else mask(c.channel, c.address),
            "valid": c.valid,
        }
        for c in session.scalars(select(Contact).where(Contact.profile_id == profile.id))
    ]
    journeys = [
        {
            "scenario": j.scenario,
            "cart": j.cart_id,
            "status": j.status,
            "step": j.step_index,
            "group": j.group,
            "reason": j.exit_reason,
            "started_at": j.started_at,
        }
        for j in session.scalars(
            select(Journey).where(Journey.profile_id == profile.id).order_by(Journey.started_at)
        )
    ]
    sent = [
        {"scenario": d.scenario, "step": d.step_id, "channel": d.channel, "status": d.status}
        for d in session.scalars(
            select(Delivery)
            .where(Delivery.profile_id == profile.id)
            .order_by(Delivery.created_at.desc())
            .limit(RECENT_DELIVERIES)
        )
    ]
    carts = [
        {
            "id": c.id,
            "kind": c.kind,
            "status": c.status,
            "value": float(c.value),
            "currency": c.currency,
        }
        for c in session.scalars(select(Cart).where(Cart.profile_id == profile.id))
    ]
    features = {
        k: v for k, v in (profile.attributes or {}).items() if k not in BOOKKEEPING_ATTRIBUTES
    }
    return {
        "profile": {
            "id": profile.id,
            "created_at": profile.created_at,
            "last_seen_at": profile.last_seen_at,
            "locale": profile.locale,
            "timezone": profile.timezone,
            "first_name": profile.first_name if show_pii else None,
        },
        "identities": {kind: value for kind, value in identities},
        "features": features,
        # the configuration's segments, evaluated on the latest cart as the engine would
        "segments": evaluated_segments(session, config, profile, now or datetime.now(tz=UTC)),
        "contacts": contacts,
        "carts": carts,
        "journeys": journeys,
        "deliveries": sent,
        "recently_viewed": recent(session, profile.id, VIEWED),
        "recently_carted": recent(session, profile.id, CARTED),
    }


@contextmanager
def logs_to_stderr(level: int = logging.WARNING) -> Iterator[None]:
    """Logs from ``level`` up (warnings: a segment that cannot be evaluated) go to stderr:
    stdout is the answer. The logging set up before is back afterwards."""
    import structlog

    from cartflow.workers.logs import configure

    before = structlog.get_config()
    configure("console", level)
    try:
        yield
    finally:
        structlog.configure(**before)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def cmd_profile(args: argparse.Namespace) -> int:
    from cartflow.providers.registry import validators
    from cartflow.workers.tools import _db

    try:
        config: Config | None = load_config(args.config, provider_types=validators())
    except (ConfigError, OSError):
        config = None  # the rest is still worth seeing; segments say why they are missing
    db = _db()
    try:
        with db.sessions() as session, logs_to_stderr():
            profile = find_profile(session, args.id)
            if profile is None:
                raise UnknownProfile(f"no profile, customer id or anonymous id {args.id!r}")
            shown = describe(session, profile, show_pii=args.show_pii, config=config)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(shown, default=_plain, ensure_ascii=False, indent=2))
        return 0
    print(f"profile {shown['profile']['id']}  last seen {shown['profile']['last_seen_at']}")
    for kind, value in shown["identities"].items():
        print(f"  {kind}: {value}")
    for contact in shown["contacts"]:
        print(f"  {contact['channel']}: {contact['address']}")
    print(f"features: {json.dumps(shown['features'], default=_plain, ensure_ascii=False)}")
    segments = shown["segments"]
    where = f" (on cart {segments['cart']})" if segments["cart"] else f" ({segments['note']})"
    print(f"segments: {', '.join(segments['in']) or '-'}{where}")
    for failed in segments["failed"]:
        print(f"  segment {failed['segment']} not evaluated: {failed['reason']}")
    for j in shown["journeys"]:
        print(f"journey {j['scenario']} {j['status']} step {j['step']} {j['reason'] or ''}")
    for d in shown["deliveries"]:
        print(f"delivery {d['scenario']}/{d['step']} {d['channel']} {d['status']}")
    for p in shown["recently_viewed"]:
        print(f"viewed {p['sku']} {p['name']}")
    return 0
