"""A 2xx is final: an order, an emptied cart or a withdrawn consent that the API has
accepted stops reminders at once, whether or not a worker has applied it yet."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.deliveries import start_sending
from cartflow.engine.events import Event
from cartflow.engine.service import Engine, EventConflict
from cartflow.engine.simulation import Simulation
from cartflow.engine.stops import stops_of
from cartflow.engine.store import Database
from cartflow.engine.store.models import Delivery, EventStop, Journey
from cartflow.providers.recording import replies

from ..factories import (
    T0,
    ClockedRecorder,
    cart_updated,
    decisions,
    deliveries,
    event,
    journeys,
    order_completed,
)

HOUR = timedelta(hours=1)


def accept(sim: Simulation, clock: SimulatedClock, when: timedelta, *events: Event) -> list[str]:
    """The API's part only: store the events (the 202); nobody applies them."""
    clock.set(T0 + when)
    return sim.engine.ingest(list(events))


def push_sent(sim: Simulation, recorder: ClockedRecorder) -> None:
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + HOUR)
    assert [c for c, _, _ in recorder.calls] == ["push"]


def pending_sms(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> tuple[Delivery, Journey]:
    """The push went out; the SMS is written as a delivery and waits as ``pending`` (the
    provider was busy)."""
    from cartflow.engine.sending import SendResult

    push_sent(sim, recorder)
    recorder.handler = replies(SendResult.retryable("recording", "HTTP 503", retry_after=600))
    sim.run_until(T0 + 3 * HOUR)
    with db.reading() as session:
        pending = session.scalar(select(Delivery).where(Delivery.status == "pending"))
        journey = session.scalar(select(Journey))
    assert pending is not None and journey is not None
    return pending, journey


def test_an_order_accepted_but_not_applied_stops_the_next_step(
    sim: Simulation, clock: SimulatedClock, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a journey whose push went out and whose SMS is due at +3h
    push_sent(sim, recorder)
    # When the shop's order is accepted at +2h but its apply message is lost
    (order_id,) = accept(sim, clock, 2 * HOUR, order_completed(T0 + 2 * HOUR))
    sim.run_until(T0 + 5 * HOUR)
    # Then nothing more was sent, and each look at the SMS says why
    assert [c for c, _, _ in recorder.calls] == ["push"]
    held = [d for d in decisions(db, "deferred") if d.step_id == "sms"]
    assert held and all("order.completed accepted at" in d.reason for d in held)
    assert all("not applied yet" in d.reason for d in held)
    # And once the order is applied, the journey ends for that reason, and its stop is gone
    sim.engine.apply_events([order_id])
    sim.run_until(T0 + 3 * 24 * HOUR)
    (journey,) = journeys(db)
    assert (journey.status, journey.exit_reason) == ("exited", "order.completed")
    assert [c for c, _, _ in recorder.calls] == ["push"]
    with db.reading() as session:
        assert session.scalars(select(EventStop)).all() == []


def test_an_order_that_cannot_be_applied_still_ends_the_journey(
    sim: Simulation, clock: SimulatedClock, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a journey whose push went out, and an order accepted at +2h
    push_sent(sim, recorder)
    (order_id,) = accept(sim, clock, 2 * HOUR, order_completed(T0 + 2 * HOUR))
    # When applying it fails and the event is set aside (as apply_events does on an error)
    sim.engine._set_aside(order_id, RuntimeError("the shop sent something odd"))
    sim.run_until(T0 + 3 * 24 * HOUR)
    # Then the journey ended at the SMS step with the reason, and nothing more was sent
    (journey,) = journeys(db)
    assert journey.status == "exited"
    assert journey.exit_reason is not None
    assert "order.completed" in journey.exit_reason
    assert "could not be applied" in journey.exit_reason
    assert [c for c, _, _ in recorder.calls] == ["push"]


def test_a_set_aside_order_does_not_silence_the_shoppers_later_carts(
    sim: Simulation, clock: SimulatedClock, db: Database, recorder: ClockedRecorder
) -> None:
    # Given an order that could not be applied, for a journey that then ended
    push_sent(sim, recorder)
    (order_id,) = accept(sim, clock, 2 * HOUR, order_completed(T0 + 2 * HOUR))
    sim.engine._set_aside(order_id, RuntimeError("odd"))
    sim.run_until(T0 + 8 * 24 * HOUR)  # past the re-entry cooldown
    # When the shopper leaves another cart a week later
    later = T0 + 8 * 24 * HOUR
    sim.feed([cart_updated(later, cart_id="cart_2")])
    sim.run_until(later + HOUR)
    # Then that journey is not held by the old order: its push goes out
    assert [c for c, _, _ in recorder.calls] == ["push", "push"]


def test_an_emptied_cart_accepted_but_not_applied_stops_the_next_step(
    sim: Simulation, clock: SimulatedClock, db: Database, recorder: ClockedRecorder
) -> None:
    push_sent(sim, recorder)
    accept(sim, clock, 2 * HOUR, cart_updated(T0 + 2 * HOUR, items=[]))
    sim.run_until(T0 + 30 * HOUR)
    assert [c for c, _, _ in recorder.calls] == ["push"]
    assert any("cart.updated accepted at" in d.reason for d in decisions(db, "deferred"))


def test_a_withdrawn_consent_not_yet_applied_moves_the_step_to_its_fallback(
    sim: Simulation, clock: SimulatedClock, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a journey whose push went out; the SMS step falls back to email
    push_sent(sim, recorder)
    # When "no more SMS" is accepted at +2h and not applied
    accept(sim, clock, 2 * HOUR, event("consent.updated", T0 + 2 * HOUR, consent={"sms": False}))
    sim.run_until(T0 + 4 * HOUR)
    # Then the SMS step went by email, saying why
    sms_step = next(d for d in deliveries(db) if d.step_id == "sms")
    assert sms_step.channel == "email"
    assert any("sms: consent withdrawn" in d.reason for d in decisions(db, "fallback"))
    assert [c for c, _, _ in recorder.calls] == ["push", "email"]


def test_an_order_stored_after_the_guards_ran_still_stops_the_send(
    sim: Simulation, clock: SimulatedClock, db: Database, recorder: ClockedRecorder
) -> None:
    # Given an SMS written as a delivery (the provider was busy: it waits as pending)
    pending, journey = pending_sms(sim, db, recorder)
    # When an order is accepted (not applied) between the guards and the send
    accept(sim, clock, 3 * HOUR + timedelta(minutes=1), order_completed(T0 + 3 * HOUR))
    # Then the compare-and-set that would hand the SMS to the provider refuses
    with db.transaction() as session:
        assert not start_sending(session, pending, journey.started_at, clock.now())
    with db.reading() as session:
        assert session.get(Delivery, pending.id).status == "pending"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda: order_completed(T0),
            {
                ("customer_id", "cust_1", "*"),
                ("anonymous_id", "anon_1", "*"),
                ("cart_id", "cart_1", "*"),
            },
        ),
        (
            lambda: order_completed(T0, cart_id=None),
            {("customer_id", "cust_1", "*"), ("anonymous_id", "anon_1", "*")},
        ),
        (lambda: cart_updated(T0, items=[]), {("cart_id", "cart_1", "*")}),
        (lambda: cart_updated(T0), set()),
        (
            lambda: event("consent.updated", T0, consent={"sms": False, "email": True}),
            {("customer_id", "cust_1", "sms"), ("anonymous_id", "anon_1", "sms")},
        ),
        (lambda: event("page.viewed", T0), set()),
    ],
)
def test_what_each_event_stops(make: object, expected: set[tuple[str, str, str]]) -> None:
    assert set(stops_of(make())) == expected  # type: ignore[operator]


def test_the_same_id_with_another_body_is_refused_whole(engine: Engine, db: Database) -> None:
    # Given a stored cart event
    first = cart_updated(T0, event_id="evt_x")
    assert engine.ingest([first]) == ["evt_x"]
    # When a batch reuses its id for an order, next to a new event
    other = order_completed(T0 + HOUR, event_id="evt_x")
    fresh = cart_updated(T0, event_id="evt_new", cart_id="cart_9")
    with pytest.raises(EventConflict) as caught:
        engine.ingest([fresh, other])
    # Then the conflict names the event, and nothing of the batch was stored
    assert caught.value.errors[0]["loc"] == "events.1.id"
    assert "evt_x" in caught.value.errors[0]["msg"]
    assert engine.ingest([fresh]) == ["evt_new"]
    with db.reading() as session:
        assert session.scalars(select(EventStop)).all() == []
    # And the same event again is a plain duplicate
    assert engine.ingest([first]) == []


def test_an_id_repeated_inside_one_batch_with_another_body_is_a_conflict(
    engine: Engine,
) -> None:
    a = cart_updated(T0, event_id="evt_twice")
    b = order_completed(T0, event_id="evt_twice")
    with pytest.raises(EventConflict, match="event 0"):
        engine.ingest([a, b])
    assert engine.ingest([a, a]) == ["evt_twice"]


def test_a_delivery_left_sending_by_a_dead_worker_is_settled_after_the_journey_ended(
    sim: Simulation, clock: SimulatedClock, db: Database, recorder: ClockedRecorder
) -> None:
    # Given an SMS a worker moved to `sending` and then died on (the provider call never
    # returned), and the shopper's order ending the journey meanwhile
    pending, journey = pending_sms(sim, db, recorder)
    with db.transaction() as session:
        assert start_sending(session, pending, journey.started_at, clock.now())
    sim.feed([order_completed(T0 + 3 * HOUR)])  # at the same moment
    assert journeys(db)[0].status == "exited"
    # When the sending grace has passed and the scheduler's sweep runs
    assert sim.engine.settle_abandoned_sends() == 0  # not yet: a live worker may be sending
    clock.set(clock.now() + sim.engine.sending_grace + timedelta(seconds=1))
    assert sim.engine.settle_abandoned_sends() == 1
    # Then the SMS is `unknown` with the reason, recorded as a decision, never resent
    sms = next(d for d in deliveries(db) if d.step_id == "sms")
    assert sms.status == "unknown" and sms.error and "do not resend" in sms.error
    assert [d.delivery_id for d in decisions(db, "unknown")] == [sms.id]
    assert sim.engine.settle_abandoned_sends() == 0


def test_a_set_aside_consent_withdrawal_holds_later_carts_until_consent_is_given(
    sim: Simulation, clock: SimulatedClock, db: Database, recorder: ClockedRecorder
) -> None:
    # Given "no more SMS" accepted and then set aside (it could not be applied)
    push_sent(sim, recorder)
    withdrawal = event("consent.updated", T0 + 2 * HOUR, consent={"sms": False})
    (withdrawal_id,) = accept(sim, clock, 2 * HOUR, withdrawal)
    sim.engine._set_aside(withdrawal_id, RuntimeError("odd"))
    sim.run_until(T0 + 8 * 24 * HOUR)
    # When the shopper leaves another cart a week later
    later = T0 + 8 * 24 * HOUR
    sim.feed([cart_updated(later, cart_id="cart_2", with_contact=False)])
    sim.run_until(later + 5 * HOUR)
    # Then no SMS reaches her on the new cart either (its step falls back to email)
    after = [c for c, at, _ in recorder.calls if at >= later]
    assert "sms" not in after and "email" in after
    # And once she gives SMS consent again, the old withdrawal no longer holds
    grant = event("consent.updated", later + 6 * HOUR, consent={"sms": True})
    sim.feed([grant])
    with db.reading() as session:
        assert session.scalars(select(EventStop)).all() == []


def test_stops_for_every_channel_are_seen_before_a_long_list_of_consent_stops(
    engine: Engine, db: Database, clock: SimulatedClock
) -> None:
    from cartflow.engine.stops import ALL, find

    for n in range(60):
        engine.ingest([event("page.viewed", T0, event_id=f"evt_c{n}", consent={"sms": False})])
    clock.set(T0 + timedelta(minutes=1))  # the order arrives after all of them
    engine.ingest([order_completed(T0, event_id="evt_order")])
    sim = Simulation(engine, clock)
    sim.feed([cart_updated(T0, event_id="evt_cart")])
    with db.reading() as session:
        from cartflow.engine.store.models import Profile

        profile = session.scalar(select(Profile))
        assert profile is not None
        found = find(session, profile.id, "cart_1", ("sms",), T0)
    assert found[0].channel == ALL and found[0].event_id == "evt_order"


def test_a_merge_moves_the_shoppers_deliveries_with_her_journeys(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given an anonymous shopper whose push went out, and a known customer elsewhere
    sim.feed([cart_updated(T0, customer_id=None)])
    sim.run_until(T0 + HOUR)
    sim.feed([event("page.viewed", T0 + HOUR, anonymous_id="anon_9", customer_id="cust_9")])
    # When she logs in as that customer (the anonymous profile merges into the known one)
    sim.feed([event("customer.identified", T0 + 2 * HOUR, customer_id="cust_9")])
    # Then her delivery belongs to the same shopper as her journey (the send path's
    # stop check looks the shopper up through it)
    (journey,) = journeys(db)
    assert {d.profile_id for d in deliveries(db)} == {journey.profile_id}
