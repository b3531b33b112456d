"""The checkout trigger through the engine (shipped config: ``checkout_abandoned`` for carts
stopped at shipping or payment, priority over the cart reminders)."""

from __future__ import annotations

from datetime import timedelta

from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database

from ..factories import T0, ClockedRecorder, cart, cart_updated, event, journeys, order_completed

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def checkout(at_minute: int, step: str) -> object:
    return event(
        "checkout.started",
        T0 + at_minute * MINUTE,
        cart={"id": "cart_1", "currency": "RUB", "items": []},
        checkout={"step": step},
    )


def test_stopped_at_payment_enters_the_checkout_scenario(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a cart whose shopper went through shipping to payment, then left
    sim.feed([cart_updated(T0), checkout(1, "shipping"), checkout(2, "payment")])

    # When the idle time passes
    sim.run_until(T0 + 2 * HOUR)

    # Then the cart records the step, enters the checkout scenario only, and gets its push
    assert cart(db).checkout_step == "payment"  # type: ignore[union-attr]
    assert [j.scenario for j in journeys(db)] == ["checkout_abandoned"]
    assert [m.channel for m in recorder.sent] == ["push"]


def test_a_late_older_step_does_not_replace_the_newer(sim: Simulation, db: Database) -> None:
    sim.feed([cart_updated(T0), checkout(5, "payment"), checkout(2, "shipping")])
    assert cart(db).checkout_step == "payment"  # type: ignore[union-attr]


def test_reached_payment_then_ordered_enters_nothing(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    sim.feed([cart_updated(T0), checkout(1, "payment"), order_completed(T0 + 3 * MINUTE)])
    sim.run_until(T0 + 3 * HOUR)
    assert journeys(db) == [] and recorder.sent == []


def test_a_step_outside_the_filter_falls_to_the_cart_scenario(
    sim: Simulation, db: Database
) -> None:
    # Given a cart that stopped at "contact", which the shipped checkout scenario leaves out
    sim.feed([cart_updated(T0), checkout(1, "contact")])
    sim.run_until(T0 + 2 * HOUR)
    # Then it is an ordinary abandoned cart
    assert [j.scenario for j in journeys(db)] == ["abandoned_cart"]


def test_a_cart_never_in_checkout_is_an_ordinary_abandoned_cart(
    sim: Simulation, db: Database
) -> None:
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + 2 * HOUR)
    assert [j.scenario for j in journeys(db)] == ["abandoned_cart"]
