"""Each profile's kept features (:mod:`cartflow.engine.features`) rebuilt from what the
database still holds: an install upgraded from before ``profile_features`` existed has
profiles, visits, carts and the retained raw events but no documents, so every shopper
would read 0 visits and 0 orders (wrong segments) until history re-accrued. Migration
0015 runs it once; ``cartflow features rebuild`` redoes it.

Three sources, in this order, each through :mod:`cartflow.engine.feature_doc`'s rules (a
rule is never written twice, so the rebuilt document is what the installed code keeps):

1. the retained events that were applied, in the order they were applied (``applied_at``,
   ``received_at``, ``id``), each routed to the live profile its ids lead to now (the
   customer id's when it has one, as :func:`cartflow.engine.profiles.resolve` prefers;
   merges followed): with every event retained, the document the live path would have;
2. the visits (``sessions``) no retained event mentions — their events were purged
   (``CARTFLOW_EVENT_RETENTION_DAYS``) but the visit still counts, in the day it started;
3. the paid carts whose order the document does not hold: an ``order.completed`` built
   from the cart (the order id, total = the cart's value, at = when it was paid).

What only a purged event said stays unknown (its views, device, source, a baseline from
``customer.updated``: ``cartflow import`` brings the shop's figures back). Profiles go a
batch at a time (keyset on the id), one query per batch for each source, never one per
event, never the whole install in memory; the batch's profiles are locked as the live
path locks them, so an event applied meanwhile waits and lands on the rebuilt document.
An event that no longer parses is skipped, logged (its id and why) and counted: it never
stops the rebuild.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import delete, exists, insert, or_, select
from sqlalchemy.orm import Session

from cartflow.engine import feature_doc
from cartflow.engine.events import Event
from cartflow.engine.store.models import Cart, Identity, Profile, ProfileFeatures, RawEvent
from cartflow.engine.store.models import Session as VisitSession

log = structlog.get_logger("cartflow.features")

#: Profiles per batch: a few queries each, a thousand small documents in memory. Each batch
#: reads through the retained events once (bench/backfill.py), so fewer, larger batches
#: cost less; two ids a profile stay far below SQLite's 32,766 bound parameters.
BATCH = 1000


class _Replay:
    """One batch being rebuilt: each profile's document and the visits its replay saw."""

    def __init__(self, profiles: list[str]) -> None:
        self.docs: dict[str, feature_doc.Doc] = {p: {} for p in profiles}
        self.seen: dict[str, dict[str, datetime]] = {p: {} for p in profiles}
        #: Visits outside the batch an event of it names: (owner, started_at).
        self.others: dict[str, tuple[str | None, datetime | None]] = {}
        self.skipped = 0


def backfill(
    session: Session, now: datetime, *, only_missing: bool = True, commit: bool = False
) -> int:
    """Rebuild the documents of the live profiles (only those without one, unless
    ``only_missing`` is false); returns how many profiles were written. ``commit``: commit
    after each batch (a command on a running install; a migration keeps its one
    transaction)."""
    written = skipped = 0
    after = ""
    while True:
        query = (
            select(Profile.id)
            .where(Profile.merged_into.is_(None), Profile.id > after)
            .order_by(Profile.id)
            .limit(BATCH)
            .with_for_update(key_share=True)  # as PROFILE_LOCK: an event applied meanwhile waits
        )
        if only_missing:
            query = query.where(~exists().where(ProfileFeatures.profile_id == Profile.id))
        batch = list(session.scalars(query))
        if not batch:
            break
        replay = _rebuild(session, batch)
        _write(session, replay.docs, now)
        written, skipped, after = written + len(batch), skipped + replay.skipped, batch[-1]
        if commit:
            session.commit()
    if written or skipped:  # a new database has nothing to say
        log.info("features_backfilled", profiles=written, events_skipped=skipped)
    return written


def _rebuild(session: Session, batch: list[str]) -> _Replay:
    replay = _Replay(batch)
    owners = _identities(session, batch)
    visits = {
        sid: (owner, started)
        for sid, owner, started in session.execute(
            select(VisitSession.id, VisitSession.profile_id, VisitSession.started_at).where(
                VisitSession.profile_id.in_(batch)
            )
        )
    }
    for event_id, at, payload in _events(session, owners):
        event = _parse(event_id, at, payload)
        if event is None:
            replay.skipped += 1
            continue
        profile_id = _route(event, owners)
        if profile_id is not None:
            _replay(session, replay, profile_id, event, visits)
    # visits whose events were purged still count, in the day they started
    for sid, (owner, started) in sorted(visits.items(), key=lambda v: (v[1][1], v[0])):
        if sid not in replay.seen[owner]:
            feature_doc.add_visit(replay.docs[owner], sid, started)
    _paid_carts(session, replay, batch)
    return replay


def _identities(session: Session, batch: list[str]) -> dict[tuple[str, str], str]:
    """(kind, value) → the batch's live profile it leads to. A merge moves the ids to
    the surviving profile; one still on a merged profile is followed to it."""
    query = (
        select(Identity.kind, Identity.value, Identity.profile_id, Profile.merged_into)
        .join(Profile, Profile.id == Identity.profile_id)
        .where(or_(Identity.profile_id.in_(batch), Profile.merged_into.in_(batch)))
    )
    return {(kind, value): into or pid for kind, value, pid, into in session.execute(query)}


def _events(
    session: Session, owners: dict[tuple[str, str], str]
) -> Iterable[tuple[str, datetime, dict[str, Any]]]:
    """The applied events carrying one of the batch's ids, in the order they were applied
    (one query for the batch; the rows of a few hundred shoppers' retained days). The ids
    are read inside the stored JSON, which no index covers: each batch reads through the
    retained events once (a one-off: the upgrade, or an operator's rebuild)."""
    conditions = [
        RawEvent.payload[kind].as_string().in_(values)
        for kind in ("customer_id", "anonymous_id")
        if (values := sorted(v for k, v in owners if k == kind))
    ]
    if not conditions:
        return []
    query = (
        select(RawEvent.id, RawEvent.at, RawEvent.payload)
        .where(RawEvent.applied_at.is_not(None), RawEvent.error.is_(None), or_(*conditions))
        .order_by(RawEvent.applied_at, RawEvent.received_at, RawEvent.id)
    )
    return [(event_id, at, payload) for event_id, at, payload in session.execute(query)]


def _parse(event_id: str, at: datetime, payload: dict[str, Any]) -> Event | None:
    """The stored event as the engine parses it when applying it (its stored ``at`` when
    the body has none); None when it no longer parses — logged without its content (no
    addresses in logs), only where and why."""
    try:
        event = Event.model_validate(payload)
    except ValidationError as exc:
        log.warning("features_backfill_event_skipped", event_id=event_id, reason=_reason(exc))
        return None
    except (TypeError, ValueError) as exc:
        log.warning("features_backfill_event_skipped", event_id=event_id, reason=type(exc).__name__)
        return None
    return event if event.at is not None else event.model_copy(update={"at": at})


def _reason(exc: ValidationError) -> str:
    """Where and why, never the value (an address, a phone)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)
    )


def _route(event: Event, owners: dict[tuple[str, str], str]) -> str | None:
    """The batch's profile the event belongs to now, None when another batch's: the
    customer id decides when the event has one (applying it linked that id)."""
    if event.customer_id:
        return owners.get(("customer_id", event.customer_id))
    return owners.get(("anonymous_id", event.anonymous_id or ""))


def _replay(
    session: Session,
    replay: _Replay,
    profile_id: str,
    event: Event,
    visits: dict[str, tuple[str, datetime]],
) -> None:
    """The call the live path made (:func:`cartflow.engine.state.apply_event`): a visit is
    new the first time its id is seen, for the profile it belongs to, and counts in the day
    it started (``sessions.started_at``: its first event, even when that one was purged)."""
    assert event.at is not None
    doc, seen, sid = replay.docs[profile_id], replay.seen[profile_id], event.session_id
    new_visit, started_at = False, None
    if sid:
        owner, started_at = visits.get(sid) or _visit(session, replay, sid)
        if owner == profile_id and sid not in seen:
            feature_doc.add_visit(doc, sid, started_at)
        elif owner is None:  # no row: the visit started with its first event seen here
            new_visit, started_at = sid not in seen, seen.get(sid, event.at)
        # else another shopper's event opened it: counted there, as the live path did
        seen.setdefault(sid, started_at)
    replay.docs[profile_id] = feature_doc.update(
        doc, event, event.at, new_visit=new_visit, visit_started_at=started_at
    )


def _visit(session: Session, replay: _Replay, sid: str) -> tuple[str | None, Any]:
    """The owner and start of a visit outside the batch (rare: one id on two shoppers)."""
    if sid not in replay.others:
        row = session.execute(
            select(VisitSession.profile_id, VisitSession.started_at).where(VisitSession.id == sid)
        ).first()
        replay.others[sid] = (row[0], row[1]) if row is not None else (None, None)
    return replay.others[sid]


def _paid_carts(session: Session, replay: _Replay, batch: list[str]) -> None:
    """Orders whose events were purged still count: each paid cart whose order the
    document does not hold, as the ``order.completed`` that paid it."""
    query = (
        select(Cart.id, Cart.profile_id, Cart.order_id, Cart.value, Cart.ordered_at)
        .where(
            Cart.profile_id.in_(batch),
            Cart.kind == "cart",
            Cart.status == "ordered",
            Cart.order_id.is_not(None),
            Cart.ordered_at.is_not(None),
        )
        .order_by(Cart.ordered_at, Cart.id)
    )
    for cart_id, owner, order_id, value, ordered_at in session.execute(query):
        assert ordered_at is not None  # the query asks for it
        doc = replay.docs[owner]
        orders = doc.get("orders") or {}
        if order_id in orders or (
            # a full list has forgotten its oldest ids: one older than them was counted
            len(orders) >= feature_doc.KEEP_ORDERS
            and ordered_at <= min(feature_doc.parse_time(t) for t in orders.values())
        ):
            continue
        order = {"id": order_id, "cart_id": cart_id, "total": value}
        body = {"id": f"backfill:{order_id}", "type": "order.completed", "at": ordered_at}
        try:  # the shopper's id only satisfies the model: the document never reads it
            paid = Event.model_validate({**body, "anonymous_id": owner, "order": order})
        except ValidationError as exc:
            log.warning("features_backfill_cart_skipped", cart_id=cart_id, reason=_reason(exc))
            replay.skipped += 1
            continue
        replay.docs[owner] = feature_doc.update(
            doc, paid, ordered_at, new_visit=False, visit_started_at=None
        )


def _write(session: Session, docs: dict[str, feature_doc.Doc], now: datetime) -> None:
    """One row per profile of the batch (an empty document too: it reads as nothing, and
    a second run of the migration's "only missing" finds nothing left to do)."""
    session.execute(delete(ProfileFeatures).where(ProfileFeatures.profile_id.in_(list(docs))))
    session.execute(
        insert(ProfileFeatures),
        [{"profile_id": p, "doc": doc, "updated_at": now} for p, doc in docs.items()],
    )
