"""Dramatiq actors: the messages cartflow sends itself, each kind on its own queue.

* ``apply_events(ids)`` on :data:`EVENTS_QUEUE` — apply stored events to state;
* ``fire_timer(timer_id, kind, ref, token, scheduled_for)`` on :data:`QUEUE` — run a
  claimed journey-step timer (a send);
* ``check_timer(...)``, the same work on :data:`CHECKS_QUEUE` — run any other claimed timer
  (the idle check that finds a cart abandoned and starts its journey).

Events have a queue and worker threads of their own, so a backlog of sends never delays
state: an order is applied while thousands of reminders wait (and until it is, its stop
holds them — :mod:`cartflow.engine.stops`). Sends and checks share the worker's threads,
sends first (Dramatiq actor priority): when 20,000 carts come due at once, the first
reminder leaves while the other carts are still being checked, instead of after them.

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
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from cartflow.engine.service import Engine
from cartflow.engine.timers import JOURNEY_STEP, Claim

log = structlog.get_logger("cartflow.actors")

#: Queue of journey steps (sends).
QUEUE = "cartflow"
#: Queue of the other timers (idle checks, which start journeys): behind the sends.
CHECKS_QUEUE = "cartflow.checks"
#: Queue of event application: never behind the sends.
EVENTS_QUEUE = "cartflow.events"
#: Every queue cartflow uses.
QUEUES = (EVENTS_QUEUE, QUEUE, CHECKS_QUEUE)
#: Dramatiq priorities (lower runs first) of the two timer actors on one worker.
SEND_PRIORITY, CHECK_PRIORITY = 0, 10


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
    return RedisBroker(url=url, middleware=middleware())  # type: ignore[no-untyped-call]


def stub_broker() -> dramatiq.Broker:
    return StubBroker(middleware=middleware())


@dataclass
class Actors:
    broker: dramatiq.Broker
    apply_events: Any
    fire_timer: Any
    check_timer: Any

    def enqueue_claims(self, claims: list[Claim]) -> None:
        for claim in claims:
            actor = self.fire_timer if claim.kind == JOURNEY_STEP else self.check_timer
            actor.send(
                claim.timer_id,
                claim.kind,
                claim.ref,
                claim.token,
                claim.scheduled_for.isoformat(),
                claim.attempts,
            )

    def backlog(self, queue: str) -> int:
        """Messages on ``queue`` not yet finished: waiting, delayed or being worked on."""
        broker: Any = self.broker
        if hasattr(broker, "do_qsize"):  # Redis: the queue's message hash and its acks
            return int(broker.do_qsize(queue))
        queues = broker.queues
        return sum(
            queues[name].unfinished_tasks for name in (queue, f"{queue}.DQ") if name in queues
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

    def check_timer(
        timer_id: int, kind: str, ref: str, token: str, scheduled_for: str, attempts: int = 0
    ) -> None:
        fire_timer(timer_id, kind, ref, token, scheduled_for, attempts)

    return Actors(
        broker=broker,
        apply_events=dramatiq.actor(
            broker=broker, actor_name="apply_events", queue_name=EVENTS_QUEUE, max_retries=5
        )(apply_events),
        fire_timer=dramatiq.actor(
            broker=broker,
            actor_name="fire_timer",
            queue_name=QUEUE,
            max_retries=0,
            priority=SEND_PRIORITY,
        )(fire_timer),
        check_timer=dramatiq.actor(
            broker=broker,
            actor_name="check_timer",
            queue_name=CHECKS_QUEUE,
            max_retries=0,
            priority=CHECK_PRIORITY,
        )(check_timer),
    )
