"""Two dispatchers at once never dispatch a timer twice (architecture §4: ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, any number of dispatcher replicas).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Timer
from cartflow.engine.timers import CART_IDLE, claim_due
from cartflow.workers.actors import CHECKS_QUEUE
from cartflow.workers.runtime import Runtime

from .conftest import wait_until

pytestmark = [pytest.mark.postgres]


def insert_due_timers(db: Database, count: int, now: datetime) -> set[int]:
    """``count`` timers, all due (spread over the last hour), in one statement."""
    rows = [
        {
            "kind": CART_IDLE,
            "ref": f"cart_{i}",
            "due_at": now - timedelta(seconds=3600 - i % 3600),
            "scheduled_for": now - timedelta(hours=1),
            "claim_token": None,
            "claimed_until": None,
            "attempts": 0,
        }
        for i in range(count)
    ]
    with db.transaction() as session:
        session.execute(insert(Timer), rows)
        return set(session.scalars(select(Timer.id)))


def due_now(db: Database) -> int:
    with db.sessions() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Timer).where(Timer.due_at <= datetime.now(UTC))
            )
            or 0
        )


def test_two_claim_loops_never_claim_the_same_timer(pg_url: str) -> None:
    # Given 5000 due timers
    setup = Database(pg_url)
    try:
        setup.migrate()
        now = datetime.now(UTC)
        inserted = insert_due_timers(setup, 5000, now)
        assert len(inserted) == 5000
    finally:
        setup.dispose()
    claimed: list[list[int]] = [[], []]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def claim_loop(index: int) -> None:
        db = Database(pg_url, pool_size=2)  # each dispatcher has its own pool
        try:
            start.wait()
            while True:
                claims = claim_due(db, now, limit=50, lease=timedelta(minutes=5))
                if not claims:
                    break
                assert len({c.token for c in claims}) == 1
                claimed[index].extend(c.timer_id for c in claims)
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)
        finally:
            db.dispose()

    # When two claim loops run at the same time until nothing is due
    threads = [threading.Thread(target=claim_loop, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)

    # Then every timer was claimed exactly once, by one of them
    first, second = (set(ids) for ids in claimed)
    assert len(first) == len(claimed[0]) and len(second) == len(claimed[1]), (
        "a loop claimed a row twice"
    )
    assert first & second == set()
    assert first | second == inserted
    assert first and second, "both loops should have claimed something (they ran concurrently)"


@pytest.mark.redis
def test_two_dispatchers_on_one_broker_fire_each_timer_once(
    make_runtime: Callable[..., Runtime], redis_url: str
) -> None:
    # Given two dispatcher processes' worth of wiring (own database pool, own Redis broker)
    # sharing one PostgreSQL and one Redis, small batches so their ticks interleave
    one = make_runtime(dispatch_batch=20)
    two = make_runtime(dispatch_batch=20)
    inserted = insert_due_timers(one.db, 3000, datetime.now(UTC))
    # When both run
    dispatchers = [
        one.start_dispatcher(interval=0.05, lease=300),
        two.start_dispatcher(interval=0.05, lease=300),
    ]
    wait_until(
        lambda: sum(d.dispatched for d in dispatchers) >= len(inserted) and due_now(one.db) == 0,
        message="every timer dispatched",
    )
    for dispatcher in dispatchers:
        dispatcher.stop()
    # Then Redis holds each (idle) timer in exactly one check_timers message
    fired: Counter[int] = Counter()
    consumer = one.broker.consume(CHECKS_QUEUE, prefetch=200, timeout=200)
    try:
        for message in consumer:
            if message is None:
                break
            assert message.actor_name == "check_timers"
            claims = message.args[0]
            assert 0 < len(claims) <= one.actors.fire_batch
            for claim in claims:
                fired[claim[0]] += 1
            consumer.ack(message)
    finally:
        consumer.close()
    assert set(fired) == inserted
    assert [timer for timer, times in fired.items() if times > 1] == []
    assert sum(d.dispatched for d in dispatchers) == len(inserted)
    assert all(d.dispatched > 0 for d in dispatchers), [d.dispatched for d in dispatchers]
