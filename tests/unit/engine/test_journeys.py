"""The journey from an abandoned cart to push → SMS → email, and everything that stops it.

These run the real engine (shipped ``scenarios.yaml``: idle 30m; push +30m, SMS +3h in
10:00-20:00 with 5% off, email +24h with 10% off; quiet hours 21:00-09:00; Moscow) on a
simulated clock through :class:`cartflow.engine.simulation.Simulation`.
"""

from __future__ import annotations

from datetime import timedelta

from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.timers import CART_IDLE
from cartflow.providers.recording import RecordingProvider

from ..factories import (
    T0,
    cart,
    cart_updated,
    decisions,
    deliveries,
    journeys,
    moscow,
    order_completed,
    page_viewed,
    timers,
)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def test_abandoned_cart_gets_push_then_sms_then_email_at_the_right_times(
    sim: Simulation, db: Database, recorder: RecordingProvider
) -> None:
    # Given a shopper who fills a cart at 10:00 Moscow and touches it again at 10:05
    last_activity = T0 + 5 * MINUTE
    sim.feed([cart_updated(T0), cart_updated(last_activity)])

    # When three days pass without any other activity
    sim.run_until(T0 + timedelta(days=3))

    # Then push, SMS and email went out in that order, timed from the last cart activity
    sent = deliveries(db)
    assert [d.channel for d in sent] == ["push", "sms", "email"]
    assert [d.step_id for d in sent] == ["push", "sms", "email"]
    assert [d.created_at - last_activity for d in sent] == [30 * MINUTE, 3 * HOUR, 24 * HOUR]
    assert all(d.status == "accepted" for d in sent)
    # ... each inside its allowed hours in Moscow (push/SMS 09-21, SMS also 10-20)
    for delivery in sent:
        local = moscow(delivery.created_at).time()
        if delivery.channel in ("push", "sms"):
            assert local.hour >= 9 and local.hour < 21, delivery.channel
        if delivery.channel == "sms":
            assert local.hour >= 10 and local.hour < 20
    # ... the provider got exactly those three messages, discounts only on SMS and email
    assert [m.channel for m in recorder.sent] == ["push", "sms", "email"]
    assert "5%" in recorder.sent[1].parts["text"]
    assert "10%" in recorder.sent[2].parts["subject"]
    assert [d.token_code is not None for d in sent] == [False, True, True]
    # ... and the journey completed, anchored on the last cart activity
    (journey,) = journeys(db)
    assert journey.status == "completed"
    assert journey.anchor_at == last_activity
    assert journey.started_at == last_activity + 30 * MINUTE
    assert cart(db) is not None and cart(db).status == "abandoned"  # type: ignore[union-attr]
    assert timers(db) == []


def test_order_between_push_and_sms_stops_the_journey(
    sim: Simulation, db: Database, recorder: RecordingProvider
) -> None:
    # Given an abandoned cart whose push went out at +30m
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + HOUR)
    assert [m.channel for m in recorder.sent] == ["push"]

    # When the shopper pays at +2h, before the SMS at +3h
    ordered_at = T0 + 2 * HOUR
    sim.feed([order_completed(ordered_at)])
    sim.run_until(T0 + timedelta(days=3))

    # Then nothing more is sent and nothing at all after the order
    assert [m.channel for m in recorder.sent] == ["push"]
    assert [d.channel for d in deliveries(db)] == ["push"]
    assert all(d.created_at < ordered_at for d in deliveries(db))
    # ... the journey exited because of the order, its step timer is gone
    (journey,) = journeys(db)
    assert journey.status == "exited"
    assert journey.exit_reason == "order.completed"
    assert journey.ended_at == ordered_at
    assert timers(db) == []
    assert [d.reason for d in decisions(db, "exited")] == ["order.completed"]
    assert cart(db).status == "ordered"  # type: ignore[union-attr]


def test_order_between_sms_and_email_stops_the_journey(
    sim: Simulation, db: Database, recorder: RecordingProvider
) -> None:
    # Given an abandoned cart that got its push and SMS
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + 4 * HOUR)
    assert [m.channel for m in recorder.sent] == ["push", "sms"]

    # When the shopper pays the next morning, before the email at +24h
    ordered_at = T0 + 20 * HOUR
    sim.feed([order_completed(ordered_at)])
    sim.run_until(T0 + timedelta(days=3))

    # Then the email never goes out
    assert [m.channel for m in recorder.sent] == ["push", "sms"]
    assert max(d.created_at for d in deliveries(db)) < ordered_at
    (journey,) = journeys(db)
    assert (journey.status, journey.exit_reason) == ("exited", "order.completed")


def test_emptied_cart_stops_the_journey(
    sim: Simulation, db: Database, recorder: RecordingProvider
) -> None:
    # Given an abandoned cart whose push went out
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + HOUR)

    # When the shopper empties the cart at +2h
    emptied_at = T0 + 2 * HOUR
    sim.feed([cart_updated(emptied_at, items=[])])
    sim.run_until(T0 + timedelta(days=3))

    # Then no SMS or email follows
    assert [m.channel for m in recorder.sent] == ["push"]
    assert all(d.created_at < emptied_at for d in deliveries(db))
    (journey,) = journeys(db)
    assert (journey.status, journey.exit_reason) == ("exited", "cart.emptied")
    assert cart(db).status == "emptied"  # type: ignore[union-attr]
    assert timers(db) == []


def test_cart_emptied_before_abandonment_never_starts_a_journey(
    sim: Simulation, db: Database, recorder: RecordingProvider
) -> None:
    # Given a cart filled and emptied ten minutes later
    sim.feed([cart_updated(T0), cart_updated(T0 + 10 * MINUTE, items=[])])

    # When a day passes
    sim.run_until(T0 + timedelta(days=1))

    # Then there is no journey, no message and no idle timer left behind
    assert journeys(db) == []
    assert recorder.sent == []
    assert timers(db) == []


def test_page_view_before_idle_ends_postpones_abandonment(
    sim: Simulation, db: Database, recorder: RecordingProvider
) -> None:
    # Given a cart at T0 and a page view at +20m (before the 30m idle period ends)
    sim.feed([cart_updated(T0), page_viewed(T0 + 20 * MINUTE)])

    # When the clock reaches +40m (30m after the cart, but only 20m after the page view)
    sim.run_until(T0 + 40 * MINUTE)

    # Then the cart is not abandoned yet: no journey, no message, one idle timer at +50m
    assert journeys(db) == []
    assert recorder.sent == []
    assert cart(db).status == "active"  # type: ignore[union-attr]
    (idle,) = timers(db)
    assert (idle.kind, idle.due_at) == (CART_IDLE, T0 + 50 * MINUTE)

    # When the clock reaches +50m
    sim.run_until(T0 + 50 * MINUTE)

    # Then the cart is abandoned then, and the push goes out right away
    (journey,) = journeys(db)
    assert journey.started_at == T0 + 50 * MINUTE
    assert [(d.channel, d.created_at) for d in deliveries(db)] == [("push", T0 + 50 * MINUTE)]


def test_cart_update_before_idle_ends_moves_the_one_idle_timer(
    sim: Simulation, db: Database
) -> None:
    # Given a cart at T0
    sim.feed([cart_updated(T0)])
    assert [(t.kind, t.due_at) for t in timers(db)] == [(CART_IDLE, T0 + 30 * MINUTE)]

    # When the shopper changes it at +20m and +25m
    sim.feed([cart_updated(T0 + 20 * MINUTE), cart_updated(T0 + 25 * MINUTE)])

    # Then the one idle timer moved to +55m (it was not multiplied)
    assert [(t.kind, t.due_at) for t in timers(db)] == [(CART_IDLE, T0 + 55 * MINUTE)]
    sim.run_until(T0 + 54 * MINUTE)
    assert journeys(db) == []
    sim.run_until(T0 + 55 * MINUTE)
    (journey,) = journeys(db)
    assert journey.anchor_at == T0 + 25 * MINUTE


def test_late_older_cart_update_after_order_never_resurrects_the_cart(
    sim: Simulation, db: Database, recorder: RecordingProvider
) -> None:
    # Given a cart that was paid for at +10m, before it was ever abandoned
    sim.feed([cart_updated(T0), order_completed(T0 + 10 * MINUTE)])

    # When a cart snapshot from +5m arrives late, after the order
    sim.feed([cart_updated(T0 + 5 * MINUTE)])
    # ... and even a newer snapshot of the same cart id arrives
    sim.feed([cart_updated(T0 + 15 * MINUTE)])
    sim.run_until(T0 + timedelta(days=3))

    # Then the cart stays ordered and nothing is ever sent
    assert cart(db).status == "ordered"  # type: ignore[union-attr]
    assert journeys(db) == []
    assert recorder.sent == []
    assert timers(db) == []


def test_order_that_overtakes_its_cart_creates_it_already_paid(
    sim: Simulation, db: Database, recorder: RecordingProvider
) -> None:
    # Given an order for a cart the engine has never seen
    sim.feed([order_completed(T0 + 10 * MINUTE)])

    # When the cart's (older) snapshot arrives afterwards
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + timedelta(days=3))

    # Then the cart is paid and no reminder goes out
    assert cart(db).status == "ordered"  # type: ignore[union-attr]
    assert recorder.sent == []
    assert journeys(db) == []


def test_order_during_the_idle_period_means_no_journey(
    sim: Simulation, db: Database, recorder: RecordingProvider
) -> None:
    # Given a cart paid 20 minutes after it was filled
    sim.feed([cart_updated(T0), order_completed(T0 + 20 * MINUTE)])

    # When days pass
    sim.run_until(T0 + timedelta(days=3))

    # Then there was never a journey or a message
    assert journeys(db) == []
    assert recorder.sent == []
    assert timers(db) == []


def test_reentry_cooldown_blocks_a_second_journey_within_seven_days(
    sim: Simulation, db: Database, recorder: RecordingProvider
) -> None:
    # Given a journey that completed for cart_1
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + 2 * timedelta(days=1))
    assert len(recorder.sent) == 3

    # When the same shopper abandons another cart two days later
    sim.feed([cart_updated(T0 + timedelta(days=2), cart_id="cart_2")])
    sim.run_until(T0 + timedelta(days=4))

    # Then no second journey starts, and the log says why
    assert len(journeys(db)) == 1
    assert len(recorder.sent) == 3
    skipped = decisions(db, "skipped")
    assert any("re-entry cooldown" in d.reason and d.cart_id == "cart_2" for d in skipped)


def test_late_snapshot_older_than_an_order_without_cart_id_sends_nothing(
    sim: Simulation, db: Database, recorder: RecordingProvider
) -> None:
    # Given a shopper who pays at +10m; the order names no cart
    sim.feed([page_viewed(T0)])
    sim.feed([order_completed(T0 + 10 * MINUTE, cart_id=None)])

    # When the snapshot of the cart she paid for (taken at +5m) arrives late
    sim.feed([cart_updated(T0 + 5 * MINUTE)])
    sim.run_until(T0 + timedelta(days=3))

    # Then nothing is sent: in time order, the order would have closed that cart
    assert recorder.sent == []


def test_in_time_order_an_order_without_cart_id_closes_the_open_cart(
    sim: Simulation, db: Database, recorder: RecordingProvider
) -> None:
    # Given the same events as above, arriving in time order
    sim.feed([cart_updated(T0 + 5 * MINUTE), order_completed(T0 + 10 * MINUTE, cart_id=None)])

    # When days pass
    sim.run_until(T0 + timedelta(days=3))

    # Then the cart is paid and nothing is sent
    assert cart(db).status == "ordered"  # type: ignore[union-attr]
    assert recorder.sent == []


def test_a_journey_that_ended_before_sending_does_not_block_the_next_one(
    sim: Simulation, db: Database, recorder: RecordingProvider
) -> None:
    hour = timedelta(hours=1)
    # Given a cart left at 20:50 Moscow: abandoned 21:20, its push held for quiet hours
    sim.feed([cart_updated(T0 + 10 * hour + 50 * MINUTE)])
    sim.run_until(T0 + 12 * hour)
    assert [j.status for j in journeys(db)] == ["active"] and recorder.sent == []
    # And emptied at 22:30, before anything was sent
    sim.feed([cart_updated(T0 + 12 * hour + 30 * MINUTE, items=[])])
    # When she fills the cart again the next morning at 10:00 and leaves
    sim.feed([cart_updated(T0 + 24 * hour)])
    sim.run_until(T0 + 25 * hour)
    # Then the re-entry cooldown did not count the silent journey: a new one reminded her
    assert sorted(str(j.exit_reason) for j in journeys(db)) == ["None", "cart.emptied"]
    assert [m.channel for m in recorder.sent] == ["push"]
    assert moscow(deliveries(db)[0].created_at).hour == 10
