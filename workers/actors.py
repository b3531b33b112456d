"""Dramatiq actors: the only two messages cartflow sends itself, each on its own queue.

* ``apply_events(ids)`` on :data:`EVENTS_QUEUE` — apply stored events to state;
* ``fire_timer(timer_id, kind, ref, token, scheduled_for)`` on :data:`QUEUE` — run a
  claimed timer (abandonment checks and sends).

Events have a queue and worker threads of their own, so a backlog of sends never delays
state: an order is applied while thousands of reminders wait (and until it is, its stop
holds them — :mod:`cartflow.engine.stops`).

Both are safe to receive twice: events apply once (compare-and-set on ``applied_at``),
timers check their claim token and the send path is idempotent. Timer messages are not
retried by Dramatiq: the timer's own lease brings an unfinished one back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from cartflow.engine.service import Engine
from cartflow.engine.timers import Claim

log = structlog.get_logger("cartflow.actors")

#: Queue of timer firings (abandonment checks and sends).
QUEUE = "cartflow"
#: Queue of event application: never behind the sends.
EVENTS_QUEUE = "cartflow.events"
#: Every queue cartflow uses.
QUEUES = (EVENTS_QUEUE, QUEUE)


def middleware() -> list[Any]:
    return [
        AgeLimit(),
        TimeLimit(time_limit=120_000),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        Retries(max_retries=5, min_backoff=1000, max_backoff=60_000),
    ]


def redis_broker(url: str) -> dramatiq.Broker:
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(url=url, middleware=middleware())  # type: ignore[no-untyped-call]


def stub_broker() -> dramatiq.Broker:
    from dramatiq.brokers.stub import StubBroker

    return StubBroker(middleware=middleware())


@dataclass
class Actors:
    broker: dramatiq.Broker
    apply_events: Any
    fire_timer: Any

    def enqueue_claims(self, claims: list[Claim]) -> None:
        for claim in claims:
            self.fire_timer.send(
                claim.timer_id,
                claim.kind,
                claim.ref,
                claim.token,
                claim.scheduled_for.isoformat(),
                claim.attempts,
            )


def declare(broker: dramatiq.Broker, engine: Engine) -> Actors:
    """Declare the actors on ``broker`` bound to ``engine`` (one engine per process)."""

    def apply_events(ids: list[str]) -> None:
        count = engine.apply_events(ids)
        log.debug("events_applied", count=count)

    def fire_timer(
        timer_id: int, kind: str, ref: str, token: str, scheduled_for: str, attempts: int = 0
    ) -> None:
        claim = Claim(timer_id, kind, ref, token, datetime.fromisoformat(scheduled_for), attempts)
        outcome = engine.fire(claim)
        log.debug("timer_fired", kind=kind, ref=ref, decision=outcome.decision)

    return Actors(
        broker=broker,
        apply_events=dramatiq.actor(
            broker=broker, actor_name="apply_events", queue_name=EVENTS_QUEUE, max_retries=5
        )(apply_events),
        fire_timer=dramatiq.actor(
            broker=broker, actor_name="fire_timer", queue_name=QUEUE, max_retries=0
        )(fire_timer),
    )
