"""The dispatcher: one APScheduler interval job (never one job per reminder).

Each tick claims due timers in batches (with a lease) and enqueues a ``fire_timer``
message per timer, until fewer than a batch are due. It also re-drives events that were
stored but never applied (a message lost between the API's commit and its enqueue),
settles deliveries a vanished worker left ``sending`` (they become ``unknown``), and
checks the configuration for a change to hot-reload.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from cartflow.engine.service import Engine
from cartflow.workers.actors import Actors

log = structlog.get_logger("cartflow.dispatcher")

#: Events stored but not applied after this long are enqueued again.
REDRIVE_AFTER = timedelta(seconds=30)


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        actors: Actors,
        *,
        interval: float = 1.0,
        batch: int = 500,
        lease: timedelta = timedelta(seconds=60),
        redrive_after: timedelta = REDRIVE_AFTER,
    ) -> None:
        self.engine = engine
        self.actors = actors
        self.interval = interval
        self.batch = batch
        self.lease = lease
        self.redrive_after = redrive_after
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
            lost = self.engine.unapplied_event_ids(self.redrive_after)
            if lost:
                log.warning("events_redriven", count=len(lost))
                self.actors.apply_events.send(lost)
            self.engine.settle_abandoned_sends()
            self.dispatched += total
            return total
        except Exception:
            log.exception("dispatch_failed")
            return 0
        finally:
            self._lock.release()

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
