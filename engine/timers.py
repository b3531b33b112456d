"""Durable timers (architecture §4): rows indexed by ``due_at``, claimed in batches with a lease.

Claiming moves ``due_at`` forward to the end of the lease and stamps a ``claim_token``.
A worker that finishes moves or deletes the row; a worker that dies leaves it, and the row
simply becomes due again when the lease runs out. So claiming touches only due rows —
the cost never grows with the number pending — and no separate "expired lease" scan exists.

On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets any number of dispatchers claim at once
without ever handing out the same row twice. SQLite runs a single dispatcher and
serialises on its write lock.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Timer

#: Kinds of timers.
CART_IDLE = "cart_idle"
JOURNEY_STEP = "journey_step"
#: An ``unknown`` send to reconcile with its vendor; ``ref`` is the delivery id.
RECONCILE = "reconcile"
#: A shopper's reply to hand to the shop's support; ``ref`` is the reply id.
REPLY_FORWARD = "reply_forward"
#: How long a claimed timer is held before another dispatcher may take it again.
DEFAULT_LEASE = timedelta(seconds=60)
#: A firing claimed this many times without finishing (its worker crashes every time)
#: is given up, with the reason recorded, instead of coming back every lease forever.
MAX_FIRINGS = 10


@dataclass(frozen=True)
class Claim:
    """A claimed timer; the token proves the claim is still the current one."""

    timer_id: int
    kind: str
    ref: str
    token: str
    scheduled_for: datetime
    #: How many times work on this firing has started before (0 the first time).
    attempts: int = 0


def set_timer(session: Session, kind: str, ref: str, due_at: datetime) -> None:
    """Create or move the one timer for ``(kind, ref)`` — moved, never multiplied."""
    values = {
        "kind": kind,
        "ref": ref,
        "due_at": due_at,
        "scheduled_for": due_at,
        "claim_token": None,
        "claimed_until": None,
        "attempts": 0,
    }
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Timer).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["kind", "ref"],
        set_={
            k: statement.excluded[k]
            for k in ("due_at", "scheduled_for", "claim_token", "claimed_until", "attempts")
        },
    )
    session.execute(statement)


def cancel_timer(session: Session, kind: str, ref: str) -> None:
    session.execute(delete(Timer).where(Timer.kind == kind, Timer.ref == ref))


def take(session: Session, claim: Claim, until: datetime) -> bool:
    """Start work on a claimed timer: True if it is still the same firing, and then the
    lease is ours until ``until``.

    The test is the firing (``scheduled_for``), not the token: when the queue runs behind
    by more than a lease, the dispatcher claims the timer again and a second message
    follows the first; whichever arrives first does the work and the other finds the
    firing gone. (Matching tokens instead would let every message go stale while the
    backlog lasts.) Two workers that both take one firing are safe: the journey row lock
    and the delivery's compare-and-set let only one send.
    """
    taken = session.execute(
        update(Timer)
        .where(Timer.id == claim.timer_id, Timer.scheduled_for == claim.scheduled_for)
        .values(
            claim_token=claim.token,
            due_at=until,
            claimed_until=until,
            attempts=Timer.attempts + 1,  # counted when work starts, not when enqueued
        )
    ).rowcount  # type: ignore[attr-defined]
    return bool(taken)


def release(session: Session, claim: Claim, due_at: datetime | None) -> None:
    """Finish a claim: delete the timer (``due_at`` None) or move it to ``due_at``.

    Only touches the row if it is still this claim's, so a stale worker cannot undo a
    newer schedule.
    """
    where = (Timer.id == claim.timer_id, Timer.claim_token == claim.token)
    if due_at is None:
        session.execute(delete(Timer).where(*where))
    else:
        session.execute(
            update(Timer)
            .where(*where)
            .values(
                due_at=due_at,
                scheduled_for=due_at,
                claim_token=None,
                claimed_until=None,
                attempts=0,
            )
        )


def claim_due(
    db: Database, now: datetime, limit: int = 500, lease: timedelta = DEFAULT_LEASE
) -> list[Claim]:
    """Claim up to ``limit`` due timers for ``lease``; returns what this caller now holds."""
    token = secrets.token_hex(8)
    until = now + lease
    with db.transaction() as session:
        if db.is_postgres:
            due = (
                select(Timer.id)
                .where(Timer.due_at <= now)
                .order_by(Timer.due_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .cte("due")
            )
            rows = session.execute(
                update(Timer)
                .where(Timer.id.in_(select(due.c.id)))
                .values(
                    due_at=until,
                    claimed_until=until,
                    claim_token=token,
                )
                .returning(Timer.id, Timer.kind, Timer.ref, Timer.scheduled_for, Timer.attempts)
            ).all()
        else:
            ids = (
                session.execute(
                    select(Timer.id).where(Timer.due_at <= now).order_by(Timer.due_at).limit(limit)
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            session.execute(
                update(Timer)
                .where(Timer.id.in_(ids))
                .values(
                    due_at=until,
                    claimed_until=until,
                    claim_token=token,
                )
            )
            rows = session.execute(
                select(Timer.id, Timer.kind, Timer.ref, Timer.scheduled_for, Timer.attempts).where(
                    Timer.id.in_(ids)
                )
            ).all()
    return [Claim(row[0], row[1], row[2], token, row[3], row[4]) for row in rows]


def next_due_at(session: Session) -> datetime | None:
    return session.execute(select(Timer.due_at).order_by(Timer.due_at).limit(1)).scalar()
