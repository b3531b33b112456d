"""Applying events to state (engine/state.py): profiles and identities, contacts and
consent, carts that only move forward in time."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Cart, Consent, Contact, Database, Identity, Profile

from ..factories import T0, ClockedRecorder, cart, cart_updated, event, journeys, timers

MINUTE = timedelta(minutes=1)


def test_an_older_snapshot_arriving_late_is_ignored(sim: Simulation, db: Database) -> None:
    # Given a cart with two items at +10m
    two = [{"sku": "A", "price": 100, "quantity": 2}]
    sim.feed([cart_updated(T0 + 10 * MINUTE, items=two)])

    # When the snapshot from T0 (one item) arrives after it
    sim.feed([cart_updated(T0, items=[{"sku": "A", "price": 100, "quantity": 1}])])

    # Then the newer snapshot stands, and the idle timer still counts from +10m
    stored = cart(db)
    assert stored is not None
    assert (stored.item_count, stored.snapshot_at) == (2, T0 + 10 * MINUTE)
    assert [t.due_at for t in timers(db)] == [T0 + 40 * MINUTE]


def test_an_older_empty_snapshot_arriving_late_does_not_empty_the_cart(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a full cart at +10m
    sim.feed([cart_updated(T0 + 10 * MINUTE)])

    # When an empty snapshot from T0 arrives late
    sim.feed([cart_updated(T0, items=[])])
    sim.run_until(T0 + 2 * timedelta(hours=1))

    # Then the cart is still full and is reminded about
    assert cart(db).status == "abandoned"  # type: ignore[union-attr]
    assert [m.channel for m in recorder.sent] == ["push"]


def test_contacts_and_consent_are_stored_normalised(sim: Simulation, db: Database) -> None:
    # Given an event with contacts written loosely
    contact = {
        "email": " Anna@Example.COM ",
        "phone": "+7 (999) 123-45-67",
        "push_token": "t",
        "timezone": "Europe/Moscow",
        "locale": "ru",
        "first_name": "Анна",
    }
    sim.feed(
        [event("customer.identified", T0, contact=contact, consent={"email": True, "sms": False})]
    )

    # Then addresses are normalised, consent is stored with its source
    with db.sessions() as session:
        contacts = {c.channel: c.address for c in session.scalars(select(Contact))}
        consent = {c.channel: (c.granted, c.source) for c in session.scalars(select(Consent))}
        (profile,) = session.scalars(select(Profile)).all()
    assert contacts == {"email": "anna@example.com", "sms": "+79991234567", "push": "t"}
    assert {k: v[0] for k, v in consent.items()} == {"email": True, "sms": False}
    assert all(source.startswith("event:") for _, source in consent.values())
    assert (profile.timezone, profile.locale, profile.first_name) == ("Europe/Moscow", "ru", "Анна")


def test_the_same_contact_twice_is_one_row(sim: Simulation, db: Database) -> None:
    sim.feed([cart_updated(T0), cart_updated(T0 + MINUTE)])
    with db.sessions() as session:
        assert len(session.scalars(select(Contact)).all()) == 3


def test_anonymous_cart_follows_the_shopper_when_she_logs_in(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a known customer (with contacts and consent) from yesterday
    contact = {
        "email": "anna@example.com",
        "push_token": "tok-known",
        "phone": "+79991234567",
        "timezone": "Europe/Moscow",
        "locale": "ru",
    }
    sim.feed(
        [
            event(
                "customer.identified",
                T0 - timedelta(days=1),
                anonymous_id="anon_old",
                customer_id="cust_1",
                contact=contact,
                consent={"push": True, "sms": True, "email": True},
            )
        ]
    )
    # ... and an anonymous visitor on a new device who fills a cart
    sim.feed(
        [
            event(
                "cart.updated",
                T0,
                anonymous_id="anon_new",
                customer_id=None,
                cart={"id": "cart_anon", "currency": "RUB", "items": [{"sku": "A", "price": 100}]},
            )
        ]
    )

    # When she logs in five minutes later
    sim.feed(
        [
            event(
                "customer.identified",
                T0 + 5 * MINUTE,
                anonymous_id="anon_new",
                customer_id="cust_1",
            )
        ]
    )
    sim.run_until(T0 + timedelta(hours=1))

    # Then the cart is hers, and the reminder reaches her known device
    with db.sessions() as session:
        known = session.get(Identity, ("customer_id", "cust_1"))
        anonymous = session.get(Identity, ("anonymous_id", "anon_new"))
        stored = session.get(Cart, "cart_anon")
    assert known is not None and anonymous is not None and stored is not None
    assert anonymous.profile_id == known.profile_id == stored.profile_id
    (journey,) = journeys(db)
    assert journey.profile_id == known.profile_id
    assert [(m.channel, m.address) for m in recorder.sent] == [("push", "tok-known")]


def test_page_views_update_last_seen_but_not_the_cart(sim: Simulation, db: Database) -> None:
    sim.feed([cart_updated(T0), event("page.viewed", T0 + 20 * MINUTE)])
    with db.sessions() as session:
        (profile,) = session.scalars(select(Profile)).all()
    assert profile.last_seen_at == T0 + 20 * MINUTE
    assert cart(db).last_activity_at == T0  # type: ignore[union-attr]


def test_checkout_started_counts_as_cart_activity(sim: Simulation, db: Database) -> None:
    # Given a cart, and checkout started at +20m
    sim.feed(
        [
            cart_updated(T0),
            event("checkout.started", T0 + 20 * MINUTE, cart={"id": "cart_1", "items": []}),
        ]
    )

    # Then the idle timer moved to +50m and the journey anchors there
    assert [t.due_at for t in timers(db)] == [T0 + 50 * MINUTE]
    sim.run_until(T0 + timedelta(hours=1))
    assert journeys(db)[0].anchor_at == T0 + 20 * MINUTE


def test_an_older_full_snapshot_arriving_late_does_not_refill_an_emptied_cart(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a cart emptied at +10m
    sim.feed([cart_updated(T0), cart_updated(T0 + 10 * MINUTE, items=[])])

    # When the full snapshot from +5m arrives late
    sim.feed([cart_updated(T0 + 5 * MINUTE)])
    sim.run_until(T0 + timedelta(days=2))

    # Then the cart stays empty and nobody is reminded
    assert cart(db).status == "emptied"  # type: ignore[union-attr]
    assert recorder.sent == []
    assert timers(db) == []
