"""The engine's front door: ingest events, apply them, fire timers.

Transports (the HTTP app, Dramatiq actors, the APScheduler dispatcher, ``simulate``) call
these methods and nothing deeper, so every mode runs the same code path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from cartflow.engine import stops, tokens
from cartflow.engine.abandonment import on_idle_timer, shortest_idle
from cartflow.engine.clock import Clock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.deliveries import SENDING_GRACE
from cartflow.engine.errors import (
    EventConflict as EventConflict,  # re-exported (defined here before)
)
from cartflow.engine.events import Event
from cartflow.engine.ingest import digest as digest  # re-exported (defined here before)
from cartflow.engine.ingest import purge_applied, store_events
from cartflow.engine.journeys import finish, on_exit_signal
from cartflow.engine.links import Links
from cartflow.engine.locks import lock_for_cart, lock_for_journey
from cartflow.engine.outcomes import Outcome, StepResult
from cartflow.engine.reconcile import Reconciler
from cartflow.engine.recovery import settle_abandoned, stuck_since
from cartflow.engine.reply_forwarding import Forwarder
from cartflow.engine.sending import Sender
from cartflow.engine.state import apply_event
from cartflow.engine.steps import StepRunner
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Delivery, RawEvent
from cartflow.engine.timers import (
    CART_IDLE,
    DEFAULT_LEASE,
    JOURNEY_STEP,
    MAX_FIRINGS,
    RECONCILE,
    REPLY_FORWARD,
    Claim,
    claim_due,
    release,
    take,
)

log = structlog.get_logger("cartflow.engine")

#: Events applied in one transaction.
APPLY_BATCH = 50


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
        apply_batch: int = APPLY_BATCH,
        links: Links | None = None,
    ) -> None:
        #: A delivery left ``sending`` this long by a vanished worker becomes ``unknown``;
        #: keep it at least the timer lease (a live worker holds its claim that long).
        self.sending_grace = sending_grace
        #: How long a worker holds a timer it works on (the dispatcher's lease, renewed).
        self.lease = lease
        #: Events applied per transaction (an error splits the batch: each on its own).
        self.apply_batch = max(1, apply_batch)
        self.db = db
        self.clock = clock
        self.configs = configs
        self.sender = sender
        #: Signs links in messages and checks them when they come back (click, unsubscribe).
        self.links = links
        self.steps = StepRunner(db, configs, sender, clock, sending_grace, lease, links)
        self.reconciler = Reconciler(db, sender, clock, lease)
        self.forwarder = Forwarder(db, configs, sender, clock, links, lease)
        configs.attach(db, clock)

    # -- ingestion ---------------------------------------------------------------------
    def ingest(self, events: Sequence[Event]) -> list[str]:
        """Store events durably; returns the ids that were new (:func:`store_events`)."""
        return store_events(self.db, events, self.clock.now())

    def apply_events(self, ids: Sequence[str]) -> int:
        """Apply stored events (oldest first); each once, whoever else tries. Returns count.
        Up to :attr:`apply_batch` events share a transaction (a batch that fails is applied
        again one event per transaction), all on one database connection."""
        with self.db.pinned():
            return self._apply_events(ids)

    def _apply_events(self, ids: Sequence[str]) -> int:
        with self.db.reading() as session:
            rows = session.execute(
                select(RawEvent.id, RawEvent.at).where(
                    RawEvent.id.in_(list(ids)), RawEvent.applied_at.is_(None)
                )
            ).all()
        ordered = [event_id for event_id, _ in sorted(rows, key=lambda r: (r[1], r[0]))]
        applied = 0
        for start in range(0, len(ordered), self.apply_batch):
            chunk = ordered[start : start + self.apply_batch]
            if len(chunk) > 1:
                try:
                    applied += self._apply_together(chunk)
                    continue
                except Exception as exc:  # one bad event, a deadlock: each on its own
                    log.info("event_batch_split", count=len(chunk), reason=type(exc).__name__)
            applied += sum(self._apply_alone(event_id) for event_id in chunk)
        return applied

    def _apply_alone(self, event_id: str) -> int:
        """One event in a transaction of its own: retried on a conflict, set aside (with
        the reason) when it cannot be applied, so the events after it go on."""
        for attempt in range(5):
            try:
                return self._apply_together([event_id])
            except (IntegrityError, OperationalError):
                if attempt == 4:
                    raise
                log.warning("event_apply_retry", event_id=event_id, attempt=attempt + 1)
            except Exception as exc:  # one bad event must not hold up the others
                self._set_aside(event_id, exc)
                return 0
        return 0  # not reached: the last attempt returns or raises

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

    def _apply_together(self, event_ids: list[str]) -> int:
        """Apply ``event_ids`` (in this order) in one transaction: all or none. Each is
        claimed by compare-and-set on ``applied_at``, so one another worker applied is
        skipped. Returns how many this call applied."""
        config = self.configs.current
        idle = shortest_idle(config)
        with self.db.transaction() as session:
            now = self.clock.now()
            won = session.execute(
                update(RawEvent)
                .where(RawEvent.id.in_(event_ids), RawEvent.applied_at.is_(None))
                .values(applied_at=now)
                .returning(RawEvent.id, RawEvent.payload, RawEvent.at, RawEvent.received_at)
                .execution_options(synchronize_session=False)
            ).all()
            rows = {row[0]: row for row in won}
            for event_id in event_ids:
                if event_id in rows:
                    _, payload, at, received_at = rows[event_id]
                    self._apply_state(session, payload, at, received_at, now, idle)
            stops.applied(session, list(rows))  # state says it now
        return len(rows)

    def _apply_state(
        self,
        session: Session,
        payload: dict[str, object],
        at: datetime,
        received_at: datetime,
        now: datetime,
        idle: timedelta,
    ) -> None:
        event = Event.model_validate(payload)
        if event.at is None:
            event = event.model_copy(update={"at": at})
        result = apply_event(session, event, now=now, idle=idle)
        for cart_id, reason in result.exits:
            on_exit_signal(session, self.configs.scenario_for, cart_id, reason, now, idle)
        if event.order is not None and event.order.discount_code:
            tokens.redeem(
                session, event.order.discount_code, order_id=event.order.id, at=event.at or now
            )
        granted = [channel for channel, yes in (event.consent or {}).items() if yes]
        stops.consent_given(session, event, received_at, granted)

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

    def purge_events(self, retention: timedelta, limit: int = 5000) -> int:
        """Delete applied raw events older than ``retention`` (:func:`purge_applied`)."""
        return purge_applied(self.db, self.clock.now() - retention, limit)

    def settle_abandoned_sends(self, limit: int = 500) -> int:
        """Deliveries left ``sending`` past the grace by a worker that vanished become
        ``unknown`` (the request may have left: reconcile, never resend). The step's own
        timer does this for a journey still running; this sweep also covers journeys that
        ended meanwhile (an order after a crash), so no delivery stays ``sending``."""
        now = self.clock.now()
        cutoff = now - self.sending_grace
        with self.db.reading() as session:  # every tick: never take SQLite's write lock idly
            query = select(Delivery.id).where(*stuck_since(cutoff)).limit(1)
            if session.scalar(query) is None:
                return 0
        with self.db.transaction() as session:
            settled = settle_abandoned(
                session, cutoff, now, limit=limit, skip_locked=self.db.is_postgres
            )
        if settled:
            log.warning("deliveries_settled_unknown", count=settled)
        return settled

    # -- timers --------------------------------------------------------------------------
    def claim_due(self, limit: int = 500, lease: timedelta | None = None) -> list[Claim]:
        return claim_due(self.db, self.clock.now(), limit=limit, lease=lease or self.lease)

    def fire_many(self, claims: Sequence[Claim]) -> list[StepResult | None]:
        """Fire a batch of claims (one queue message) on one database connection, each as
        :meth:`fire` does. One that fails is logged and left to its lease, which brings
        its timer back; the others go on. ``None`` stands for a failed one."""
        results: list[StepResult | None] = []
        with self.db.pinned():
            for claim in claims:
                try:
                    results.append(self.fire(claim))
                except Exception:
                    log.exception("timer_failed", kind=claim.kind, ref=claim.ref)
                    results.append(None)
        return results

    def fire(self, claim: Claim) -> StepResult:
        """Run whatever a claimed timer is for, then release the claim once, as the result
        says (:class:`~cartflow.engine.outcomes.StepResult`): moved to when to look again,
        deleted, or left to the timer the work set. Safe to call twice for one claim."""
        runners: dict[str, Callable[[Claim], StepResult]] = {
            JOURNEY_STEP: self.steps.run,
            RECONCILE: self.reconciler.run,
            REPLY_FORWARD: self.forwarder.run,
        }
        runner = runners.get(claim.kind)
        if runner is not None and claim.attempts < MAX_FIRINGS:
            result = runner(claim)  # its own transactions: the provider is called
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
