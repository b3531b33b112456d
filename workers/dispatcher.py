"""The dispatcher: one APScheduler interval job (never one job per reminder).

Each tick claims due timers in batches and enqueues a message per timer (``fire_timer``
for sends, ``check_timer`` for idle checks), until fewer than a batch are due. It also
re-drives events that were stored but never applied (a message lost between the API's
commit and its enqueue), settles deliveries a vanished worker left ``sending`` (they
become ``unknown``), deletes applied raw events past their retention
(``CARTFLOW_EVENT_RETENTION_DAYS``), and checks the configuration for a change to hot-reload.

Two leases (architecture §4): a claimed timer is held for the *queue lease* (10 minutes)
while its message waits in the queue, so a backlog never makes the dispatcher claim it
again and enqueue a duplicate; the worker that starts it holds it for the *timer lease*
(60 s, renewed by the work), after which a crashed worker's timer comes back.

Re-drive sends only what is lost, not what is slow: while the events queue still holds
messages, an unapplied event is most likely among them, so nothing is re-sent until the
queue has drained — unless the event has waited ``redrive_stuck_after`` (10 minutes), and
each event is re-sent at most once per that period.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from cartflow.engine.service import Engine
from cartflow.workers.actors import EVENTS_QUEUE, Actors

log = structlog.get_logger("cartflow.dispatcher")

#: Events stored but not applied after this long are enqueued again (once the events
#: queue has drained: before, they are most likely still in it).
REDRIVE_AFTER = timedelta(seconds=30)
#: ... and after this long even while the queue is busy (a message lost in a backlog).
REDRIVE_STUCK_AFTER = timedelta(minutes=10)
#: How long a claimed timer's message may wait in the queue before it is claimed again.
QUEUE_LEASE = timedelta(minutes=10)
#: How often the tick purges raw events past their retention.
PURGE_EVERY = timedelta(minutes=1)


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        actors: Actors,
        *,
        interval: float = 1.0,
        batch: int = 500,
        lease: timedelta = QUEUE_LEASE,
        redrive_after: timedelta = REDRIVE_AFTER,
        redrive_stuck_after: timedelta = REDRIVE_STUCK_AFTER,
        event_retention: timedelta | None = None,
    ) -> None:
        self.engine = engine
        self.actors = actors
        self.interval = interval
        self.batch = batch
        self.lease = lease
        self.redrive_after = redrive_after
        self.redrive_stuck_after = redrive_stuck_after
        #: Applied raw events older than this are deleted (None: kept forever).
        self.event_retention = event_retention
        self._purged_at: datetime | None = None
        self.purged = 0
        #: Event id → when this dispatcher last re-sent it.
        self._redriven: dict[str, datetime] = {}
        self.redriven = 0
        self._lock = threading.Lock()
        self.scheduler = BackgroundScheduler(daemon=True)
        self.dispatched = 0

    def tick(self) -> int:
        """One pass: claim and enqueue everything due now. Returns timers dispatched."""
        if not self._lock.acquire(blocking=False):
            return 0  # the previous tick is still running
        try:
            total = 0
            while True:
                claims = self.engine.claim_due(limit=self.batch, lease=self.lease)
                self.actors.enqueue_claims(claims)
                total += len(claims)
                if len(claims) < self.batch:
                    break
            self.redrive()
            self.engine.settle_abandoned_sends()
            self.purge()
            self.dispatched += total
            return total
        except Exception:
            log.exception("dispatch_failed")
            return 0
        finally:
            self._lock.release()

    def redrive(self) -> int:
        """Re-send events stored but not applied that are lost; returns how many."""
        try:
            busy = self.actors.backlog(EVENTS_QUEUE) > 0
        except Exception:  # cannot tell: take it as busy (only long-stuck events go again)
            log.warning("events_backlog_unknown", exc_info=True)
            busy = True
        older_than = self.redrive_stuck_after if busy else self.redrive_after
        candidates = self.engine.unapplied_event_ids(older_than)
        now = self.engine.now()
        again = now - self.redrive_stuck_after
        self._redriven = {k: v for k, v in self._redriven.items() if v > again}
        lost = [i for i in candidates if i not in self._redriven]
        if lost:
            log.warning("events_redriven", count=len(lost), queue_busy=busy)
            self.actors.apply_events.send(lost)
            self._redriven.update(dict.fromkeys(lost, now))
            self.redriven += len(lost)
        return len(lost)

    def purge(self) -> int:
        """Delete applied raw events past the retention, at most once per
        :data:`PURGE_EVERY` and 5,000 a time (a backlog goes a batch per minute)."""
        now = self.engine.now()
        if self.event_retention is None or (
            self._purged_at is not None and now - self._purged_at < PURGE_EVERY
        ):
            return 0
        self._purged_at = now
        purged = self.engine.purge_events(self.event_retention)
        if purged:
            log.info("events_purged", count=purged)
        self.purged += purged
        return purged

    def start(self, reload_interval: float | None = None) -> None:
        self.scheduler.add_job(
            self.tick,
            "interval",
            seconds=self.interval,
            id="dispatch",
            max_instances=1,
            coalesce=True,
        )
        if reload_interval:
            self.scheduler.add_job(
                self.engine.configs.reload,
                "interval",
                seconds=reload_interval,
                id="reload",
                max_instances=1,
                coalesce=True,
            )
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
