"""The same-intent rule (engine/intent.py): one person, one journey per intent."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from cartflow.engine.intent import SAME_INTENT, same_intent
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Cart, Database

from ..factories import (
    CONSENT,
    ITEMS,
    T0,
    ClockedRecorder,
    decisions,
    deliveries,
    event,
    journeys,
)

MINUTE = timedelta(minutes=1)


def _device_cart(anonymous: str, cart_id: str, minutes: int) -> object:
    return event(
        "cart.updated",
        T0 + minutes * MINUTE,
        anonymous_id=anonymous,
        customer_id=None,
        cart={"id": cart_id, "currency": "RUB", "items": ITEMS},
    )


def _identify(anonymous: str, minutes: int) -> object:
    return event(
        "customer.identified",
        T0 + minutes * MINUTE,
        anonymous_id=anonymous,
        customer_id="cust_1",
        contact={"push_token": f"tok-{anonymous}", "timezone": "Europe/Moscow"},
        consent=CONSENT,
    )


def test_two_devices_and_identify_give_one_profile_and_one_journey(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given the same items carted on device A (a1) and device B (b1)
    sim.feed([_device_cart("a1", "cart_a", 0), _device_cart("b1", "cart_b", 1)])  # type: ignore[list-item]
    # When both identify as cust_1 and the idle timers fire
    sim.feed([_identify("a1", 2), _identify("b1", 3)])  # type: ignore[list-item]
    sim.run_until(T0 + timedelta(days=3))

    # Then one journey runs, and the other cart says why it did not start one
    # (both carts fall idle at once, from her last activity: the first timer to fire wins)
    (journey,) = journeys(db)
    other = ({"cart_a", "cart_b"} - {journey.cart_id}).pop()
    skipped = [d for d in decisions(db, "skipped") if d.reason.startswith(SAME_INTENT)]
    assert skipped and {d.cart_id for d in skipped} == {other}
    assert skipped[0].journey_id == journey.id
    # ... one profile holds both carts, and each step reached her once
    with db.sessions() as session:
        owners = set(session.scalars(select(Cart.profile_id)))
    assert owners == {journey.profile_id}
    sent = deliveries(db)
    assert sent and all(d.journey_id == journey.id for d in sent)
    assert sorted(d.step_id for d in sent) == sorted({d.step_id for d in sent})
    assert len(recorder.sent) == len(sent)


def test_a_merge_ends_the_later_of_two_running_journeys(sim: Simulation, db: Database) -> None:
    # Given each device's cart already in a journey (both identified only later)
    sim.feed(
        [
            event(
                "cart.updated",
                T0,
                anonymous_id="a1",
                customer_id=None,
                cart={"id": "cart_a", "currency": "RUB", "items": ITEMS},
                contact={"push_token": "tok-a"},
                consent=CONSENT,
            ),
            event(
                "cart.updated",
                T0 + MINUTE,
                anonymous_id="b1",
                customer_id="cust_1",
                cart={"id": "cart_b", "currency": "RUB", "items": ITEMS[:1]},
                contact={"push_token": "tok-b"},
                consent=CONSENT,
            ),
        ]
    )
    sim.run_until(T0 + timedelta(hours=2))
    assert {j.status for j in journeys(db)} == {"active"}
    # When device A identifies as cust_1 (the anonymous profile merges into the known one)
    sim.feed([_identify("a1", 125)])  # type: ignore[list-item]
    # Then the later journey joins the earlier: one runs, the other ended "same_intent"
    by_cart = {j.cart_id: j for j in journeys(db)}
    assert by_cart["cart_a"].status == "active"
    assert by_cart["cart_b"].status == "exited"
    assert by_cart["cart_b"].exit_reason == SAME_INTENT
    (exited,) = [d for d in decisions(db, "exited") if d.journey_id == by_cart["cart_b"].id]
    assert by_cart["cart_a"].id in exited.reason


@given(st.frozensets(st.sampled_from("ABCDE")), st.frozensets(st.sampled_from("ABCDE")))
def test_same_intent_is_symmetric_and_means_containment(
    one: frozenset[str], other: frozenset[str]
) -> None:
    assert same_intent(one, other) == same_intent(other, one)
    assert same_intent(one, other) == (bool(one and other) and (one <= other or other <= one))
