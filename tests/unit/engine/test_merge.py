"""Merging one person's profiles (engine/merge.py, engine/profiles.py): everything moves,
consent by ``at``, two customers never become one."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.events import Event
from cartflow.engine.merge import _MOVED, merge_attributes
from cartflow.engine.scenario.loader import Config
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.store.models import Cart, Consent, Contact, Identity, Profile

from ..factories import T0, ClockedRecorder, build_engine, event, fresh_database

MINUTE = timedelta(minutes=1)


def _device_events(minutes: list[int], grants: tuple[bool, bool]) -> dict[str, Event]:
    """Device a1 and b1 each cart something with a contact and an email answer, then each
    identifies as cust_1; ``minutes``: each event's ``at``."""

    def cart(device: str, at: int, contact: dict[str, Any], granted: bool) -> Event:
        return event(
            "cart.updated",
            T0 + at * MINUTE,
            anonymous_id=device,
            customer_id=None,
            cart={
                "id": f"cart_{device}",
                "currency": "RUB",
                "items": [{"sku": device, "price": 100}],
            },
            contact=contact,
            consent={"email": granted},
        )

    return {
        "cart_a": cart("a1", minutes[0], {"email": "a@example.com"}, grants[0]),
        "cart_b": cart("b1", minutes[1], {"email": "b@example.com", "push_token": "t"}, grants[1]),
        "id_a": event("customer.identified", T0 + minutes[2] * MINUTE, anonymous_id="a1"),
        "id_b": event("customer.identified", T0 + minutes[3] * MINUTE, anonymous_id="b1"),
    }


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("merge")


@settings(max_examples=20, deadline=None)
@given(
    order=st.permutations(["cart_a", "cart_b", "id_a", "id_b"]),
    minutes=st.lists(st.integers(0, 20), min_size=4, max_size=4, unique=True),
    grants=st.tuples(st.booleans(), st.booleans()),
)
def test_any_interleaving_ends_in_one_profile_with_everything(
    order: list[str],
    minutes: list[int],
    grants: tuple[bool, bool],
    migrated_template: Path,
    shipped_config: Config,
    scratch: Path,
) -> None:
    # Given two devices' carts, contacts, consent answers and identifications
    events = _device_events(minutes, grants)
    db = fresh_database(migrated_template, scratch)
    try:
        clock = SimulatedClock(T0 + 30 * MINUTE)
        sim = Simulation(
            build_engine(db, clock, ConfigHolder(shipped_config), ClockedRecorder(clock)), clock
        )
        # When they arrive in any order (each applied on arrival)
        for name in order:
            sim.feed([events[name]])
        with db.sessions() as session:
            live = session.scalars(select(Profile).where(Profile.merged_into.is_(None))).all()
            owners = set(session.scalars(select(Identity.profile_id)))
            carts = set(session.scalars(select(Cart.profile_id)))
            contacts = {(c.profile_id, c.address) for c in session.scalars(select(Contact))}
            consent = session.scalars(select(Consent)).all()
            tombstones = [p.id for p in session.scalars(select(Profile)) if p.merged_into]
            left = sum(
                session.scalar(
                    select(func.count()).select_from(model).where(model.profile_id.in_(tombstones))
                )
                or 0
                for model in _MOVED
            )
    finally:
        db.dispose()

    # Then one profile holds every id, cart and contact
    (profile,) = live
    assert owners == carts == {profile.id}
    assert contacts == {(profile.id, a) for a in ("a@example.com", "b@example.com", "t")}
    assert left == 0
    # ... and the email answer is the one given last by `at`
    (email,) = consent
    assert email.profile_id == profile.id
    assert email.granted == (grants[0] if minutes[0] > minutes[1] else grants[1])


def test_a_shared_device_never_makes_two_customers_one(sim: Simulation, db: Database) -> None:
    # Given device a1 used by cust_1, who carted something there
    sim.feed(
        [
            event(
                "cart.updated",
                T0,
                anonymous_id="a1",
                customer_id="cust_1",
                cart={"id": "cart_1", "currency": "RUB", "items": [{"sku": "X", "price": 100}]},
            )
        ]
    )
    # When cust_2 logs in on the same device
    sim.feed([event("customer.identified", T0 + MINUTE, anonymous_id="a1", customer_id="cust_2")])
    # Then two profiles stay, the cart stays cust_1's, and the device now means cust_2
    with db.sessions() as session:
        one = session.get(Identity, ("customer_id", "cust_1"))
        two = session.get(Identity, ("customer_id", "cust_2"))
        device = session.get(Identity, ("anonymous_id", "a1"))
        stored = session.get(Cart, "cart_1")
        merged = session.scalars(select(Profile).where(Profile.merged_into.is_not(None))).all()
    assert one is not None and two is not None and device is not None and stored is not None
    assert one.profile_id != two.profile_id
    assert stored.profile_id == one.profile_id
    assert device.profile_id == two.profile_id
    assert merged == []


@pytest.mark.parametrize(
    ("target", "source", "expected"),
    [
        ({"orders_count": 2}, {"orders_count": 3}, {"orders_count": 5}),
        ({"total_spent": 10.5}, {"total_spent": 1}, {"total_spent": 11.5}),
        ({}, {"orders_count": 1, "x": "s"}, {"orders_count": 1, "x": "s"}),
        ({"x": "t"}, {"x": "s"}, {"x": "t"}),
        (
            {"last_order_at": "2026-01-02T00:00:00+00:00", "last_order_id": "o1"},
            {"last_order_at": "2026-03-01T00:00:00+00:00", "last_order_id": "o2"},
            {"last_order_at": "2026-03-01T00:00:00+00:00", "last_order_id": "o2"},
        ),
        (
            {"last_order_at": "2026-03-01T00:00:00+00:00", "last_order_id": "o1"},
            {"last_order_at": "2026-01-02T00:00:00+00:00", "last_order_id": "o2"},
            {"last_order_at": "2026-03-01T00:00:00+00:00", "last_order_id": "o1"},
        ),
        (
            {"first_order_at": "2026-03-01T00:00:00+00:00"},
            {"first_order_at": "2026-01-02T00:00:00+00:00"},
            {"first_order_at": "2026-01-02T00:00:00+00:00"},
        ),
        ({"flag_count": True}, {"flag_count": True}, {"flag_count": True}),
    ],
)
def test_attributes_merge_as_one_persons(
    target: dict[str, Any], source: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert merge_attributes(target, source) == expected
