"""Browse abandonment through the engine (engine/browse_abandonment.py): a shopper who
viewed products and carted nothing enters ``on: browse.abandoned``; carting something
supersedes the browse journey; an order ends it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cartflow.engine.browse_abandonment import browse_cart_id
from cartflow.engine.outcomes import SUPERSEDED
from cartflow.engine.scenario.loader import Config
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database, Profile

from ..factories import (
    CONSENT,
    CONTACT,
    T0,
    Run,
    cart,
    cart_updated,
    decisions,
    event,
    journeys,
    order_completed,
    page_viewed,
    write_config,
)


def profiles(db: Database) -> list[Profile]:
    with db.sessions() as session:
        return list(session.scalars(select(Profile).where(Profile.merged_into.is_(None))))


MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

BROWSE_YAML = """\
scenario: browse_test
priority: 5
trigger: {on: browse.abandoned, idle: 1h}
reentry: 7d
expires: 2d
steps:
  - {id: first, after: 1h, channel: push, template: browse_abandoned/push}
  - {id: second, after: 5h, channel: push, template: browse_abandoned/push}
"""
CART_YAML = """\
scenario: cart_test
priority: 10
trigger: {on: cart.abandoned, idle: 30m}
reentry: 7d
expires: 2d
steps:
  - {id: push, after: 30m, channel: push, template: abandoned_cart/push}
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "cart.yaml").write_text(CART_YAML, encoding="utf-8")
    return write_config(tmp_path, BROWSE_YAML)


def viewed(at: Any, sku: str = "SKU-9", ids: dict[str, Any] | None = None, **product: Any) -> Any:
    body = {"sku": sku, "name": f"Product {sku}", "price": 1500, "currency": "RUB"}
    body.update(product)
    return event(
        "product.viewed", at, product=body, contact=CONTACT, consent=CONSENT, **(ids or {})
    )


def test_a_browse_journey_starts_and_a_cart_journey_supersedes_it(
    config: Config, db: Database
) -> None:
    # Given a shopper who viewed two products, carted nothing and went quiet
    run = Run.start(config, db)
    run.play([viewed(T0, "A"), viewed(T0 + 2 * MINUTE, "B", stock=2)], until=90 * MINUTE)

    # Then a browse journey started on the profile's browse cart, and its first push left
    [browse] = journeys(db)
    assert (browse.scenario, browse.cart_id, browse.status) == (
        "browse_test",
        browse_cart_id(browse.profile_id),
        "active",
    )
    assert [m.channel for m in run.recorder.sent] == ["push"]
    # ru locale: the newest product first, with the stock the shop sent
    assert run.recorder.sent[0].parts["body"].startswith("Осталось 2 шт. — Product B")
    browse_cart = cart(db, browse.cart_id)
    assert browse_cart is not None and [i["sku"] for i in browse_cart.items] == ["B", "A"]

    # When the shopper carts something, then leaves that cart too
    carted_at = run.sim.clock.now()
    run.play([cart_updated(carted_at)], until=3 * HOUR)

    # Then the browse journey ended as superseded at that moment, the cart journey started,
    # and no browse message left after the cart (its second push was due at T0 + 5h)
    by_scenario = {j.scenario: j for j in journeys(db)}
    assert by_scenario["browse_test"].status == "exited"
    assert by_scenario["browse_test"].exit_reason == SUPERSEDED
    assert by_scenario["browse_test"].ended_at == carted_at
    assert by_scenario["cart_test"].started_at > carted_at
    run.sim.run_until(T0 + 8 * HOUR)
    later = [c for c in run.recorder.calls if c[1] > carted_at]
    assert len(later) == 1  # the cart's push only
    assert cart(db, browse.cart_id).status == SUPERSEDED  # type: ignore[union-attr]
    # and the decision log records both journeys starting and the browse one superseded
    started = [d.scenario for d in decisions(db, "started")]
    assert started == ["browse_test", "cart_test"]
    assert any(d.reason == SUPERSEDED for d in decisions(db, "exited"))


def test_a_browse_journey_brought_by_a_profile_merge_is_superseded_too(
    config: Config, db: Database
) -> None:
    # Given an anonymous visitor who browsed on one device and got a browse journey
    # (she is known on another device: cust_1 / anon_1)
    run = Run.start(config, db)
    anonymous = {"customer_id": None, "anonymous_id": "anon_2"}
    run.play([page_viewed(T0), viewed(T0 + MINUTE, ids=anonymous)], until=70 * MINUTE)
    [browse] = journeys(db)
    assert len(profiles(db)) == 2
    # When she signs in and carts something (the anonymous profile merges into hers)
    carted_at = run.sim.clock.now()
    run.play([cart_updated(carted_at, anonymous_id="anon_2")], until=2 * HOUR)
    # Then the browse journey she brought along is superseded, and her cart journey runs
    by_scenario = {j.scenario: j for j in journeys(db)}
    assert (by_scenario["browse_test"].exit_reason, by_scenario["browse_test"].ended_at) == (
        SUPERSEDED,
        carted_at,
    )
    assert "cart_test" in by_scenario
    assert len(profiles(db)) == 1  # merged: the browse cart came from the other profile
    assert browse.cart_id != browse_cart_id(profiles(db)[0].id)


def test_carting_before_the_idle_time_starts_no_browse_journey(
    config: Config, db: Database
) -> None:
    run = Run.start(config, db)
    run.play([viewed(T0), cart_updated(T0 + 10 * MINUTE)], until=3 * HOUR)
    assert [j.scenario for j in journeys(db)] == ["cart_test"]
    # and a view while the cart is open opens no browsing again
    run.play([viewed(run.sim.clock.now(), "C")], until=3 * HOUR)
    assert [j.scenario for j in journeys(db)] == ["cart_test"]


def test_an_order_ends_the_browse_journey(config: Config, db: Database) -> None:
    run = Run.start(config, db)
    run.play([viewed(T0)], until=70 * MINUTE)
    ordered_at = run.sim.clock.now()
    run.play([order_completed(ordered_at, cart_id=None)], until=10 * HOUR)
    [browse] = journeys(db)
    assert (browse.status, browse.exit_reason) == ("exited", "order.completed")
    assert [c for c in run.recorder.calls if c[1] > ordered_at] == []


def test_a_view_after_the_order_opens_browsing_again(config: Config, db: Database) -> None:
    run = Run.start(config, db)
    run.play([viewed(T0), order_completed(T0 + MINUTE, cart_id=None)], until=2 * HOUR)
    assert journeys(db) == []
    run.play([viewed(run.sim.clock.now(), "D")], until=2 * HOUR)
    assert [j.scenario for j in journeys(db)] == ["browse_test"]


def test_a_new_visit_after_the_browse_journey_ended_may_start_another(
    config: Config, db: Database
) -> None:
    # Given a browse journey that ran to its end (two pushes, then done)
    run = Run.start(config, db)
    run.play([viewed(T0)], until=7 * HOUR)
    [first] = journeys(db)
    assert first.status == "completed"
    # When she comes back after the re-entry cooldown (7d) and browses again
    back = T0 + timedelta(days=8)
    run.sim.run_until(back)
    run.play([viewed(back, "E")], until=2 * HOUR)
    # Then a second browse journey starts
    assert [j.scenario for j in journeys(db)] == ["browse_test", "browse_test"]


def test_a_browse_cart_leaves_when_real_carts_are_first_checked(
    config: Config, db: Database
) -> None:
    # The cart idle timer still first looks at the shortest cart idle (30m here): a browse
    # scenario's longer idle does not move it.
    from cartflow.engine.abandonment import shortest_idle

    assert shortest_idle(config) == 30 * MINUTE


def test_the_shipped_browse_scenario_fires(sim: Simulation, db: Database, recorder: Any) -> None:
    # Given the shipped configuration and a shopper who looked at one product, with stock
    sim.feed([viewed(T0, "SKU-7", stock=1)])
    # When two hours pass (idle 1h, the push after 1h, inside 10:00-20:00 Moscow)
    sim.run_until(T0 + 3 * HOUR)
    # Then she entered browse_abandoned and got its push, with the honest stock
    assert [j.scenario for j in journeys(db)] == ["browse_abandoned"]
    [push] = recorder.sent
    assert push.channel == "push" and "Осталось 1 шт." in push.parts["body"]
