"""Raw-event retention: applied events' bodies are deleted after CARTFLOW_EVENT_RETENTION_DAYS,
what still matters stays, and an old event posted again changes nothing it should not."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store.models import RawEvent, SegmentCart
from cartflow.workers.actors import declare, stub_broker
from cartflow.workers.dispatcher import PURGE_EVERY, Dispatcher

from ..factories import T0, cart, cart_updated, deliveries, order_completed

DAY = timedelta(days=1)


def stored_ids(engine: Engine) -> set[str]:
    with engine.db.reading() as session:
        return set(session.scalars(select(RawEvent.id)))


def test_only_applied_events_past_the_retention_are_purged(
    engine: Engine, clock: SimulatedClock
) -> None:
    # Given events received 40 days ago (one applied, one set aside, one never applied)
    # and one applied yesterday
    old = [cart_updated(T0, event_id=f"old-{n}", cart_id=f"c{n}") for n in range(3)]
    engine.apply_events(engine.ingest(old[:2]))
    engine.ingest(old[2:])
    with engine.db.transaction() as session:
        session.execute(
            update(RawEvent).where(RawEvent.id == "old-1").values(error="ValueError: bad")
        )
    clock.set(T0 + 39 * DAY)
    engine.apply_events(engine.ingest([cart_updated(clock.now(), event_id="new", cart_id="c9")]))
    clock.set(T0 + 40 * DAY)
    # When the retention is 30 days
    purged = engine.purge_events(timedelta(days=30))
    # Then only the old applied event is gone
    assert purged == 1
    assert stored_ids(engine) == {"old-1", "old-2", "new"}


def test_an_old_event_posted_again_after_the_purge_never_revives_a_paid_cart(
    sim: Simulation, engine: Engine, clock: SimulatedClock
) -> None:
    # Given a cart that was paid, and whose events were purged
    added = cart_updated(T0, event_id="added")
    sim.feed([added, order_completed(T0 + timedelta(minutes=5), event_id="paid")])
    clock.set(T0 + 31 * DAY)
    assert engine.purge_events(timedelta(days=30)) == 2
    # When the shop's webhook retries the old cart event (its id is forgotten: new again)
    assert engine.ingest([added]) == ["added"]
    engine.apply_events(["added"])
    sim.run_until(clock.now() + 2 * DAY)
    # Then the cart stays paid and nothing is sent
    paid = cart(engine.db)
    assert paid is not None and paid.status == "ordered"
    assert deliveries(engine.db) == []


def test_the_scheduler_purges_at_most_once_a_minute(engine: Engine, clock: SimulatedClock) -> None:
    actors = declare(stub_broker(), engine)
    dispatcher = Dispatcher(engine, actors, event_retention=timedelta(days=30))
    engine.apply_events(
        engine.ingest([cart_updated(T0, event_id=f"e{n}", cart_id=f"c{n}") for n in range(2)])
    )
    clock.set(T0 + 31 * DAY)
    assert dispatcher.purge() == 2
    engine.apply_events(engine.ingest([cart_updated(T0, event_id="late", cart_id="c7")]))
    clock.set(T0 + 62 * DAY)
    assert dispatcher.purge() == 1
    engine.apply_events(engine.ingest([cart_updated(T0, event_id="later", cart_id="c8")]))
    clock.set(clock.now() + PURGE_EVERY / 2)
    assert dispatcher.purge() == 0, "purged again within a minute"
    clock.set(clock.now() + PURGE_EVERY)
    assert dispatcher.purge() == 0, "received a minute ago: inside the retention"
    assert dispatcher.purged == 3
    kept = Dispatcher(engine, actors)  # no retention: nothing is ever purged
    clock.set(clock.now() + 400 * DAY)
    assert kept.purge() == 0 and "later" in stored_ids(engine)


def test_the_segment_doors_running_carts_go_with_the_events(
    engine: Engine, clock: SimulatedClock
) -> None:
    # Given a running cart unchanged for 31 days and one changed yesterday
    with engine.db.transaction() as session:
        session.add(SegmentCart(id="old", items=[], updated_at=T0 - timedelta(days=31)))
        session.add(SegmentCart(id="new", items=[], updated_at=T0 - timedelta(days=1)))

    # When the raw events past a 30-day retention are purged
    clock.set(T0)
    engine.purge_events(timedelta(days=30))

    # Then only the old running cart is forgotten
    with engine.db.reading() as session:
        assert set(session.scalars(select(SegmentCart.id))) == {"new"}
