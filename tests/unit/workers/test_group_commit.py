"""Group commit (workers/group_commit.py): requests that arrive together are stored in one
transaction, and each still gets the answer it would have got alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from cartflow.engine.events import Event
from cartflow.engine.service import Engine, EventConflict
from cartflow.engine.store.models import RawEvent
from cartflow.workers.group_commit import GroupCommit
from tests.unit.factories import T0, cart_updated


class SlowStore:
    """The real engine's ingest, held until released, so requests pile up behind the
    first transaction as they do under load; records each transaction's size."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.gate = threading.Event()
        self.sizes: list[int] = []
        self.enqueued: list[list[str]] = []

    def ingest(self, events: Sequence[Event]) -> list[str]:
        self.gate.wait(timeout=10)
        self.sizes.append(len(events))
        return self.engine.ingest(events)

    def enqueue(self, ids: list[str]) -> None:
        self.enqueued.append(ids)


def event(n: int, **fields: object) -> Event:
    return cart_updated(T0, event_id=f"e-{n}", cart_id=f"cart-{n}", anonymous_id=f"a-{n}", **fields)


async def submit_all(
    commit: GroupCommit, store: SlowStore, requests: list[list[Event]]
) -> list[list[str] | BaseException]:
    tasks = [asyncio.create_task(commit.submit(r)) for r in requests]
    await asyncio.sleep(0.05)  # every request is waiting behind the first transaction
    store.gate.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


def stored(engine: Engine) -> int:
    with engine.db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(RawEvent)) or 0)


def test_requests_that_arrive_together_share_a_transaction(engine: Engine) -> None:
    # Given 40 single-event requests arriving while a transaction is running
    store = SlowStore(engine)
    commit = GroupCommit(store.ingest, store.enqueue, lanes=1)
    results = asyncio.run(submit_all(commit, store, [[event(n)] for n in range(40)]))
    # Then each got its own event back as new, and all 40 were stored
    assert results == [[f"e-{n}"] for n in range(40)]
    assert stored(engine) == 40
    # in fewer transactions than requests (the first alone, the rest together)
    assert sum(store.sizes) == 40 and len(store.sizes) < 40, store.sizes
    assert commit.groups == len(store.sizes) and commit.requests == 40
    # and one apply message per transaction, with every new id once
    assert sorted(i for ids in store.enqueued for i in ids) == sorted(f"e-{n}" for n in range(40))


def test_a_reused_id_refuses_only_its_own_request(engine: Engine) -> None:
    # Given an event already stored
    engine.ingest([event(1)])
    store = SlowStore(engine)
    commit = GroupCommit(store.ingest, store.enqueue, lanes=1)
    # When a group holds its id with another body, beside good requests
    reused = event(1, items=[{"sku": "X", "name": "Other", "price": 1.0, "quantity": 9}])
    results = asyncio.run(submit_all(commit, store, [[event(2)], [reused], [event(3)], [event(1)]]))
    # Then that request alone is refused (nothing of it stored); the others stand
    assert results[0] == ["e-2"] and results[2] == ["e-3"]
    assert isinstance(results[1], EventConflict)
    assert results[3] == [], "the same body again is a duplicate, not a conflict"
    assert stored(engine) == 3


def test_an_id_twice_in_one_group_is_new_once(engine: Engine) -> None:
    store = SlowStore(engine)
    commit = GroupCommit(store.ingest, store.enqueue, lanes=1)
    results = asyncio.run(submit_all(commit, store, [[event(0)], [event(5)], [event(5)]]))
    assert results == [["e-0"], ["e-5"], []]


def test_a_storage_failure_fails_every_request_of_the_group(engine: Engine) -> None:
    def broken(events: Sequence[Event]) -> list[str]:
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    commit = GroupCommit(broken, lambda ids: None)

    async def go() -> list[list[str] | BaseException]:
        return await asyncio.gather(
            *(commit.submit([event(n)]) for n in range(3)), return_exceptions=True
        )

    results = asyncio.run(go())
    assert all(isinstance(r, OperationalError) for r in results), results
    assert stored(engine) == 0


def test_a_batch_larger_than_a_group_is_stored_whole(engine: Engine) -> None:
    store = SlowStore(engine)
    store.gate.set()
    commit = GroupCommit(store.ingest, store.enqueue, max_events=5)
    batch = [event(n) for n in range(12)]
    assert asyncio.run(commit.submit(batch)) == [e.id for e in batch]
    assert store.sizes == [12] and commit.groups == 1
