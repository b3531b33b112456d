"""Dramatiq actors: the messages cartflow sends itself, each kind on its own queue.

* ``apply_events(ids)`` on :data:`EVENTS_QUEUE` — apply stored events to state;
* ``fire_timers(claims)`` on :data:`QUEUE` — run up to ``fire_batch`` claimed journey-step
  timers (sends), one after another on one database connection;
* ``check_timers(claims)``, the same on :data:`CHECKS_QUEUE` for the other timers (the
  idle check that finds a cart abandoned and starts its journey).

A claim travels as ``[timer_id, kind, ref, token, scheduled_for, attempts]``. One message
per batch instead of one per timer: a burst of 20,000 is 1,000 messages, not 20,000
(each message costs Redis round trips to enqueue, fetch and acknowledge). The one-timer
actors ``fire_timer`` / ``check_timer`` of earlier versions are still declared, so
messages already queued when a deployment upgrades are run, not dropped.

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
#: Claimed timers per message (``CARTFLOW_FIRE_BATCH``).
FIRE_BATCH = 20


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


def claim_args(claim: Claim) -> list[Any]:
    """A claim as it travels in a message (JSON)."""
    return [
        claim.timer_id,
        claim.kind,
        claim.ref,
        claim.token,
        claim.scheduled_for.isoformat(),
        claim.attempts,
    ]


def claim_from(args: list[Any]) -> Claim:
    timer_id, kind, ref, token, scheduled_for, attempts = args
    return Claim(timer_id, kind, ref, token, datetime.fromisoformat(scheduled_for), attempts)


@dataclass
class Actors:
    broker: dramatiq.Broker
    apply_events: Any
    fire_timers: Any
    check_timers: Any
    #: Claimed timers per message.
    fire_batch: int = FIRE_BATCH

    def enqueue_claims(self, claims: list[Claim]) -> None:
        """Sends on :data:`QUEUE`, the rest on :data:`CHECKS_QUEUE`, ``fire_batch`` per
        message, in the order claimed (the earliest due first)."""
        sends = [claim_args(c) for c in claims if c.kind == JOURNEY_STEP]
        checks = [claim_args(c) for c in claims if c.kind != JOURNEY_STEP]
        size = max(1, self.fire_batch)
        for actor, batch in ((self.fire_timers, sends), (self.check_timers, checks)):
            for start in range(0, len(batch), size):
                actor.send(batch[start : start + size])

    def backlog(self, queue: str) -> int:
        """Messages on ``queue`` not yet finished: waiting, delayed or being worked on."""
        broker: Any = self.broker
        if hasattr(broker, "do_qsize"):  # Redis: the queue's message hash and its acks
            return int(broker.do_qsize(queue))
        queues = broker.queues
        return sum(
            queues[name].unfinished_tasks for name in (queue, f"{queue}.DQ") if name in queues
        )


def declare(broker: dramatiq.Broker, engine: Engine, fire_batch: int = FIRE_BATCH) -> Actors:
    """Declare the actors on ``broker`` bound to ``engine`` (one engine per process)."""

    def apply_events(ids: list[str]) -> None:
        count = engine.apply_events(ids)
        log.debug("events_applied", count=count)

    def fire_timers(claims: list[list[Any]]) -> None:
        results = engine.fire_many([claim_from(args) for args in claims])
        log.debug("timers_fired", count=len(results), failed=results.count(None))

    def fire_timer(
        timer_id: int, kind: str, ref: str, token: str, scheduled_for: str, attempts: int = 0
    ) -> None:  # the one-timer message of earlier versions
        fire_timers([[timer_id, kind, ref, token, scheduled_for, attempts]])

    def timer_actor(function: Any, name: str, queue: str, priority: int) -> Any:
        return dramatiq.actor(
            broker=broker, actor_name=name, queue_name=queue, max_retries=0, priority=priority
        )(function)

    # the same work, a second name: an actor belongs to one queue
    def check_timers(claims: list[list[Any]]) -> None:
        fire_timers(claims)

    def check_timer(*args: Any) -> None:
        fire_timer(*args)

    batch = timer_actor(fire_timers, "fire_timers", QUEUE, SEND_PRIORITY)
    checks = timer_actor(check_timers, "check_timers", CHECKS_QUEUE, CHECK_PRIORITY)
    timer_actor(fire_timer, "fire_timer", QUEUE, SEND_PRIORITY)
    timer_actor(check_timer, "check_timer", CHECKS_QUEUE, CHECK_PRIORITY)
    return Actors(
        broker=broker,
        apply_events=dramatiq.actor(
            broker=broker, actor_name="apply_events", queue_name=EVENTS_QUEUE, max_retries=5
        )(apply_events),
        fire_timers=batch,
        check_timers=checks,
        fire_batch=fire_batch,
    )
