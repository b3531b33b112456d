"""Storing events before the 202 (architecture §3): the batch is one transaction,
idempotent on the event ``id``, and an event that stops reminders writes its stops in it.

The same id with the same body is a duplicate (ignored); the same id with another body is
a conflict (:class:`~cartflow.engine.errors.EventConflict`, a 409) and the batch stores
nothing. An event dated far ahead of our clock is taken as "now", its own time kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from cartflow.engine import stops
from cartflow.engine.errors import EventConflict
from cartflow.engine.events import Event
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import EventStop, RawEvent, SegmentCart

#: How far ahead of our clock an event's ``at`` may be before it is taken as "now".
FUTURE_SKEW = timedelta(minutes=5)


def digest(payload: dict[str, object]) -> str:
    """The event as the shop sent it, canonical: what "the same event" means."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def store_events(db: Database, events: Sequence[Event], now: datetime) -> list[str]:
    """Store events durably; returns the ids that were new.

    The same id with the same body is a duplicate (ignored); the same id with another
    body raises :class:`EventConflict` and stores nothing. An event that stops
    reminders (order, emptied cart, withdrawn consent) writes its stops in the same
    transaction, so they hold from the 202 on (:mod:`cartflow.engine.stops`)."""
    rows: list[dict[str, object]] = []
    stop_rows: list[dict[str, object]] = []
    first: dict[str, tuple[int, str]] = {}
    conflicts: list[dict[str, str]] = []
    for index, event in enumerate(events):
        payload = event.model_dump(mode="json", exclude_none=True)
        fingerprint = digest(payload)
        if event.id in first:
            if first[event.id][1] != fingerprint:
                conflicts.append(_conflict(index, event.id, f"event {first[event.id][0]}"))
            continue
        first[event.id] = (index, fingerprint)
        at = event.at or now
        if at > now + FUTURE_SKEW:
            # a clock far ahead would silence the shopper until then: trust our clock,
            # keep theirs on record
            payload["at"], payload["sent_at_claimed"] = now.isoformat(), payload.get("at")
            at = now
        rows.append(
            {
                "id": event.id,
                "type": event.type,
                "at": at,
                "received_at": now,
                "applied_at": None,
                "payload": payload,
                "digest": fingerprint,
            }
        )
        stop_rows += stops.rows_for(event, event.id, now)
    if conflicts:
        raise EventConflict(conflicts)
    if not rows:
        return []
    insert = postgresql.insert if db.is_postgres else sqlite.insert
    with db.transaction() as session:
        result = session.execute(
            insert(RawEvent)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(RawEvent.id)
        )
        new = {row[0] for row in result}
        known = [str(row["id"]) for row in rows if row["id"] not in new]
        if known:
            stored = dict(
                session.execute(
                    select(RawEvent.id, RawEvent.digest).where(RawEvent.id.in_(known))
                ).all()
            )
            for row in rows:
                was = stored.get(str(row["id"]))
                if row["id"] in stored and was is not None and was != row["digest"]:
                    index = first[str(row["id"])][0]
                    conflicts.append(_conflict(index, str(row["id"]), "an earlier event"))
            if conflicts:
                raise EventConflict(conflicts)  # rolls the whole batch back
        fresh = [r for r in stop_rows if r["event_id"] in new]
        if fresh:
            session.execute(insert(EventStop).values(fresh).on_conflict_do_nothing())
    return [str(row["id"]) for row in rows if row["id"] in new]


def _conflict(index: int, event_id: str, earlier: str) -> dict[str, str]:
    return {
        "loc": f"events.{index}.id",
        "msg": (
            f"event id {event_id!r} was already used by {earlier} with a different body; "
            "an id names one event: resend it unchanged, or give a new event a new id"
        ),
    }


def purge_applied(db: Database, cutoff: datetime, limit: int = 5000) -> int:
    """Delete up to ``limit`` applied events received before ``cutoff`` (the raw-event
    retention); returns how many. Events set aside with an error stay — their stops still
    hold — and so do events not applied yet. An id purged is forgotten: posted again, it
    is a new event (state decides what it changes: an older cart snapshot never
    resurrects a cart, a paid cart stays paid)."""
    with db.transaction() as session:
        old = (
            select(RawEvent.id)
            .where(
                RawEvent.received_at < cutoff,
                RawEvent.applied_at.is_not(None),
                RawEvent.error.is_(None),
            )
            .order_by(RawEvent.received_at)
            .limit(limit)
        )
        ids = list(session.scalars(old))
        if ids:
            session.execute(delete(RawEvent).where(RawEvent.id.in_(ids)))
        # the Segment door's running carts go with the events that built them
        session.execute(delete(SegmentCart).where(SegmentCart.updated_at < cutoff))
    return len(ids)
