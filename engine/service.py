"""The engine's front door: ingest events, apply them, fire timers.

Transports (the HTTP app, Dramatiq actors, the APScheduler dispatcher, ``simulate``) call
these methods and nothing deeper, so every mode runs the same code path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from cartflow.engine import deliveries, stops, tokens
from cartflow.engine.clock import Clock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.decisions import record_for
from cartflow.engine.deliveries import LEFT_SENDING, SENDING_GRACE
from cartflow.engine.errors import (
    EventConflict as EventConflict,  # re-exported (defined here before)
)
from cartflow.engine.events import Event
from cartflow.engine.journeys import finish, on_exit_signal, on_idle_timer, shortest_idle
from cartflow.engine.locks import lock_for_cart, lock_for_journey
from cartflow.engine.outcomes import Outcome, StepResult
from cartflow.engine.sending import Sender
from cartflow.engine.state import apply_event
from cartflow.engine.steps import StepRunner
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Delivery, EventStop, RawEvent
from cartflow.engine.timers import (
    CART_IDLE,
    DEFAULT_LEASE,
    JOURNEY_STEP,
    MAX_FIRINGS,
    Claim,
    claim_due,
    release,
    take,
)

log = structlog.get_logger("cartflow.engine")


#: How far ahead of our clock an event's ``at`` may be before it is taken as "now".
FUTURE_SKEW = timedelta(minutes=5)


def digest(payload: dict[str, object]) -> str:
    """The event as the shop sent it, canonical: what "the same event" means."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Engine:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        configs: ConfigHolder,
        sender: Sender,
        *,
        sending_grace: timedelta = SENDING_GRACE,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        #: A delivery left ``sending`` this long by a vanished worker becomes ``unknown``;
        #: keep it at least the timer lease (a live worker holds its claim that long).
        self.sending_grace = sending_grace
        #: How long a worker holds a timer it works on (the dispatcher's lease, renewed).
        self.lease = lease
        self.db = db
        self.clock = clock
        self.configs = configs
        self.sender = sender
        self.steps = StepRunner(db, configs, sender, clock, sending_grace, lease)
        configs.attach(db, clock)

    # -- ingestion ---------------------------------------------------------------------
    def ingest(self, events: Sequence[Event]) -> list[str]:
        """Store events durably; returns the ids that were new.

        The same id with the same body is a duplicate (ignored); the same id with another
        body raises :class:`EventConflict` and stores nothing. An event that stops
        reminders (order, emptied cart, withdrawn consent) writes its stops in the same
        transaction, so they hold from the 202 on (:mod:`cartflow.engine.stops`)."""
        now = self.clock.now()
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
        insert = postgresql.insert if self.db.is_postgres else sqlite.insert
        with self.db.transaction() as session:
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

    def apply_events(self, ids: Sequence[str]) -> int:
        """Apply stored events (oldest first); each once, whoever else tries. Returns count."""
        with self.db.reading() as session:
            rows = session.execute(
                select(RawEvent.id, RawEvent.at).where(
                    RawEvent.id.in_(list(ids)), RawEvent.applied_at.is_(None)
                )
            ).all()
        applied = 0
        for event_id, _ in sorted(rows, key=lambda r: (r[1], r[0])):
            for attempt in range(5):
                try:
                    applied += self._apply_one(event_id)
                    break
                except (IntegrityError, OperationalError):
                    if attempt == 4:
                        raise
                    log.warning("event_apply_retry", event_id=event_id, attempt=attempt + 1)
                except Exception as exc:  # one bad event must not hold up the others
                    self._set_aside(event_id, exc)
                    break
        return applied

    def _set_aside(self, event_id: str, exc: Exception) -> None:
        """Mark an event that cannot be applied as done, with the reason, so it is not
        re-driven forever and the events after it go on."""
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        log.error("event_failed", event_id=event_id, reason=reason)
        with self.db.transaction() as session:
            now = self.clock.now()
            session.execute(
                update(RawEvent)
                .where(RawEvent.id == event_id, RawEvent.applied_at.is_(None))
                .values(applied_at=now, error=reason)
            )
            stops.set_aside(session, event_id, now)  # what it stops stays stopped

    def _apply_one(self, event_id: str) -> int:
        config = self.configs.current
        idle = shortest_idle(config)
        with self.db.transaction() as session:
            now = self.clock.now()
            won = session.execute(
                update(RawEvent)
                .where(RawEvent.id == event_id, RawEvent.applied_at.is_(None))
                .values(applied_at=now)
            ).rowcount  # type: ignore[attr-defined]
            if not won:
                return 0
            raw = session.get(RawEvent, event_id)
            assert raw is not None
            event = Event.model_validate(raw.payload)
            if event.at is None:
                event = event.model_copy(update={"at": raw.at})
            result = apply_event(session, event, now=now, idle=idle)
            for cart_id, reason in result.exits:
                on_exit_signal(session, self.configs.scenario_for, cart_id, reason, now, idle)
            stops.applied(session, event_id)  # state says it now
            if event.order is not None and event.order.discount_code:
                tokens.redeem(
                    session, event.order.discount_code, order_id=event.order.id, at=event.at or now
                )
            granted = [channel for channel, yes in (event.consent or {}).items() if yes]
            stops.consent_given(session, event, raw.received_at, granted)
        return 1

    def unapplied_event_ids(self, older_than: timedelta, limit: int = 1000) -> list[str]:
        """Events accepted but not applied after ``older_than`` (a lost message): re-drive."""
        cutoff = self.clock.now() - older_than
        with self.db.reading() as session:
            return list(
                session.scalars(
                    select(RawEvent.id)
                    .where(RawEvent.applied_at.is_(None), RawEvent.received_at <= cutoff)
                    .order_by(RawEvent.received_at)
                    .limit(limit)
                )
            )

    def settle_abandoned_sends(self, limit: int = 500) -> int:
        """Deliveries left ``sending`` past the grace by a worker that vanished become
        ``unknown`` (the request may have left: reconcile, never resend). The step's own
        timer does this for a journey still running; this sweep also covers journeys that
        ended meanwhile (an order after a crash), so no delivery stays ``sending``."""
        now = self.clock.now()
        cutoff = now - self.sending_grace
        stuck = Delivery.status == "sending", Delivery.updated_at < cutoff
        with self.db.reading() as session:  # every tick: never take SQLite's write lock idly
            if session.scalar(select(Delivery.id).where(*stuck).limit(1)) is None:
                return 0
        with self.db.transaction() as session:
            query = select(Delivery).where(*stuck).order_by(Delivery.updated_at).limit(limit)
            if self.db.is_postgres:
                query = query.with_for_update(skip_locked=True)
            settled = 0
            for delivery in session.scalars(query):
                deliveries.mark_unknown(delivery, LEFT_SENDING, now)
                record_for(session, delivery, now, Outcome.UNKNOWN, LEFT_SENDING)
                settled += 1
        if settled:
            log.warning("deliveries_settled_unknown", count=settled)
        return settled

    # -- timers --------------------------------------------------------------------------
    def claim_due(self, limit: int = 500, lease: timedelta | None = None) -> list[Claim]:
        return claim_due(self.db, self.clock.now(), limit=limit, lease=lease or self.lease)

    def fire(self, claim: Claim) -> StepResult:
        """Run whatever a claimed timer is for, then release the claim once, as the result
        says (:class:`~cartflow.engine.outcomes.StepResult`): moved to when to look again,
        deleted, or left to the timer the work set. Safe to call twice for one claim."""
        if claim.kind == JOURNEY_STEP and claim.attempts < MAX_FIRINGS:
            result = self.steps.run(claim)  # its own transactions: the provider is called
            if not result.timer_set:  # between them, never inside one
                with self.db.transaction() as session:
                    release(session, claim, result.again)
            return result
        with self.db.transaction() as session:
            if claim.attempts >= MAX_FIRINGS:
                result = self._give_up(session, claim)
            elif claim.kind == CART_IDLE:
                result = self._idle(session, claim)
            else:
                result = StepResult.done(Outcome.STALE, f"unknown timer kind {claim.kind}")
            if not result.timer_set:
                release(session, claim, result.again)
        return result

    def _give_up(self, session: Session, claim: Claim) -> StepResult:
        reason = f"gave up after {claim.attempts} attempts that never finished"
        log.error("timer_abandoned", kind=claim.kind, ref=claim.ref, attempts=claim.attempts)
        journey = lock_for_journey(session, claim.ref) if claim.kind == JOURNEY_STEP else None
        if not take(session, claim, self.clock.now() + self.lease):
            return StepResult.moved_on(Outcome.STALE, "this firing of the timer is already done")
        if journey is not None:
            finish(session, journey, "exited", reason, self.clock.now())
        return StepResult.done(Outcome.FAILED, reason)

    def _idle(self, session: Session, claim: Claim) -> StepResult:
        lock_for_cart(session, claim.ref)  # profile → cart, before the timer
        if not take(session, claim, self.clock.now() + self.lease):
            return StepResult.moved_on(Outcome.STALE, "timer was moved")
        again = on_idle_timer(session, self.configs.current, claim.ref, self.clock.now())
        if again is None:
            return StepResult.done(Outcome.CHECKED, "idle check")
        return StepResult.later(Outcome.DEFERRED, "idle check", again)

    def now(self) -> datetime:
        return self.clock.now()


def _conflict(index: int, event_id: str, earlier: str) -> dict[str, str]:
    return {
        "loc": f"events.{index}.id",
        "msg": (
            f"event id {event_id!r} was already used by {earlier} with a different body; "
            "an id names one event: resend it unchanged, or give a new event a new id"
        ),
    }
