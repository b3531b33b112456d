"""Recently viewed and carted products (engine/browsing.py): newest first, one per SKU,
bounded, late events in their place, joined on a profile merge, and in a template."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from cartflow.engine.browsing import CARTED, RECENT_LIMIT, VIEWED, note, recent
from cartflow.engine.context import build_context
from cartflow.engine.profiles import new_id
from cartflow.engine.scenario.loader import Config
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Cart, Database, Profile

from ..factories import T0, cart_updated, event

MINUTE = timedelta(minutes=1)


def viewed(at_minute: int, sku: str, **product: Any) -> Any:
    body = {"sku": sku, "name": f"Product {sku}", "price": 100, "currency": "RUB"}
    body.update(product)
    return event("product.viewed", T0 + at_minute * MINUTE, product=body)


def skus(db: Database, kind: str = VIEWED, exclude: tuple[str, ...] = ()) -> list[str]:
    with db.sessions() as session:
        profile = session.scalars(select(Profile).where(Profile.merged_into.is_(None))).one()
        return [p["sku"] for p in recent(session, profile.id, kind, exclude)]


def test_newest_first_one_per_sku(sim: Simulation, db: Database) -> None:
    # Given views of A, B, then A again
    sim.feed([viewed(1, "A"), viewed(2, "B"), viewed(3, "A", stock=2)])

    # Then A is listed once, first, with its latest details
    assert skus(db) == ["A", "B"]
    with db.sessions() as session:
        profile = session.scalars(select(Profile)).one()
        first = recent(session, profile.id, VIEWED)[0]
    assert first["stock"] == 2 and first["seen_at"] == T0 + 3 * MINUTE


def test_the_list_is_bounded(sim: Simulation, db: Database) -> None:
    # Given more distinct products viewed than the list keeps
    sim.feed([viewed(i, f"P{i}") for i in range(RECENT_LIMIT + 5)])

    # Then only the newest RECENT_LIMIT stay, newest first
    assert skus(db) == [f"P{i}" for i in reversed(range(5, RECENT_LIMIT + 5))]


def test_a_late_older_view_does_not_reorder_newer_ones(sim: Simulation, db: Database) -> None:
    # Given A viewed at +10m and B at +20m
    sim.feed([viewed(10, "A", stock=5), viewed(20, "B")])

    # When a view of A from +1m arrives late, and a view of C from +5m
    sim.feed([viewed(1, "A", stock=9), viewed(5, "C")])

    # Then A keeps its place and its newer details; C goes below A
    assert skus(db) == ["B", "A", "C"]
    with db.sessions() as session:
        profile = session.scalars(select(Profile)).one()
        a = next(p for p in recent(session, profile.id, VIEWED) if p["sku"] == "A")
    assert a["stock"] == 5


def test_a_late_view_older_than_a_full_list_is_dropped(sim: Simulation, db: Database) -> None:
    sim.feed([viewed(100 + i, f"P{i}") for i in range(RECENT_LIMIT)])
    sim.feed([viewed(1, "OLD")])
    assert "OLD" not in skus(db) and len(skus(db)) == RECENT_LIMIT


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    views=st.lists(
        st.tuples(st.integers(0, 200), st.sampled_from([f"S{i}" for i in range(30)])),
        min_size=1,
        max_size=40,
    )
)
def test_any_arrival_order_gives_the_same_list(db: Database, views: list[tuple[int, str]]) -> None:
    # The list is the same function of the views whatever order they arrive in.
    def run(order: list[tuple[int, str]]) -> list[str]:
        profile_id = new_id()
        with db.transaction() as session:
            session.add(Profile(id=profile_id, created_at=T0, updated_at=T0, attributes={}))
            session.flush()
            for minute, sku in order:
                note(session, profile_id, VIEWED, [(sku, {"name": sku})], T0 + minute * MINUTE)
        with db.sessions() as session:
            return [p["sku"] for p in recent(session, profile_id, VIEWED)]

    newest: dict[str, int] = {}
    for minute, sku in views:
        newest[sku] = max(newest.get(sku, minute), minute)
    expected = sorted(newest, key=lambda s: (-newest[s], s))[:RECENT_LIMIT]
    assert run(views) == expected
    assert run(list(reversed(views))) == expected


def test_carted_products_are_listed_and_the_current_cart_left_out(
    sim: Simulation, db: Database
) -> None:
    # Given a cart with SKU-A, then another cart with SKU-B, and SKU-A viewed
    sim.feed(
        [
            viewed(0, "SKU-A"),
            cart_updated(T0 + MINUTE, items=[{"sku": "SKU-A", "price": 10, "quantity": 1}]),
            cart_updated(
                T0 + 2 * MINUTE,
                cart_id="cart_2",
                items=[{"sku": "SKU-B", "price": 20, "quantity": 1}],
            ),
        ]
    )

    # Then both were carted; leaving out cart_2's lines leaves SKU-A
    assert skus(db, CARTED) == ["SKU-B", "SKU-A"]
    assert skus(db, CARTED, exclude=("SKU-B",)) == ["SKU-A"]
    assert skus(db, VIEWED, exclude=("SKU-A",)) == []


def test_a_merge_joins_the_lists_keeping_the_newest(sim: Simulation, db: Database) -> None:
    # Given an anonymous visitor who viewed A and B, and a known customer who viewed A later
    anon = {"anonymous_id": "anon_x", "customer_id": None}
    sim.feed(
        [
            event("product.viewed", T0, product={"sku": "A", "name": "A"}, **anon),
            event("product.viewed", T0 + MINUTE, product={"sku": "B", "name": "B"}, **anon),
            event(
                "product.viewed",
                T0 + 5 * MINUTE,
                product={"sku": "A", "name": "A"},
                anonymous_id="anon_y",
                customer_id="cust_9",
            ),
        ]
    )

    # When the anonymous visitor logs in as that customer
    sim.feed(
        [event("customer.identified", T0 + 6 * MINUTE, anonymous_id="anon_x", customer_id="cust_9")]
    )

    # Then the surviving profile has both, A once with its newest sighting
    assert skus(db) == ["A", "B"]
    with db.sessions() as session:
        merged = session.scalars(select(Profile).where(Profile.merged_into.is_not(None))).one()
        assert recent(session, merged.id, VIEWED) == []


def test_recently_viewed_in_the_shipped_email(
    sim: Simulation, db: Database, shipped_config: Config
) -> None:
    # Given a shopper who looked at two products (one nearly sold out) and carted another
    sim.feed(
        [
            viewed(0, "SKU-X", name="Red scarf", stock=2, url="https://shop.example/p/x"),
            viewed(1, "SKU-Y", name="Blue hat"),
            cart_updated(T0 + 2 * MINUTE, items=[{"sku": "SKU-Y", "name": "Blue hat", "price": 5}]),
        ]
    )

    # When the abandoned-cart email renders with the engine's context
    with db.sessions() as session:
        profile = session.scalars(select(Profile)).one()
        cart = session.get(Cart, "cart_1")
        assert cart is not None
        context = build_context(session, shipped_config, profile, cart, T0 + 3 * MINUTE)
    context.update(
        discount={"code": "CF1", "percent": 5.0},
        links={"cart": "https://shop.example/cart_1"},
        locale="en",
        step={"id": "email", "channel": "email"},
    )
    parts = shipped_config.templates.render("abandoned_cart/email", "email", "en", context)

    # Then it mentions the scarf and its honest stock, and not the hat already in the cart
    text = parts["text"]
    assert "You also looked at" in text and "Red scarf — only 2 left" in text
    assert "Blue hat" not in text.split("You also looked at")[1]
    assert "Red scarf" in parts["html"] and "https://shop.example/p/x" in parts["html"]
