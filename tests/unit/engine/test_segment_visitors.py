"""Crafted visitors, sent as real events through the engine: each built-in segment takes in
the shopper the playbook describes, and the kept figures behind it are right."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.context import build_context
from cartflow.engine.events import Event
from cartflow.engine.features import read_features
from cartflow.engine.scenario.loader import Config
from cartflow.engine.simulation import Simulation
from cartflow.engine.state import apply_event
from cartflow.engine.store import Database, Identity, Profile
from cartflow.engine.store.models import Cart

from ..factories import T0, ClockedRecorder, build_engine, cart_updated, event, write_config

HOUR = timedelta(hours=1)


def _line(sku: str, quantity: int = 1) -> dict[str, Any]:
    return {"sku": sku, "name": sku, "price": 1000, "quantity": quantity}


def _cart(at: datetime, session: str, *lines: dict[str, Any]) -> Event:
    cart = {"id": "cart_1", "currency": "RUB", "items": list(lines)}
    return event("cart.updated", at, session_id=session, cart=cart)


def _views(at: datetime, session: str, n: int, category: str = "shoes") -> list[Event]:
    return [
        event(
            "product.viewed",
            at + timedelta(minutes=k),
            session_id=session,
            product={"sku": f"sku-{category}-{k}", "category": category},
        )
        for k in range(n)
    ]


def _order(at: datetime, n: int, code: str | None = None) -> Event:
    order: dict[str, Any] = {"id": f"o{n}", "total": 3000, "currency": "RUB"}
    if code:
        order["discount_code"] = code
    return event("order.completed", at, order=order)


D1, D2, D3 = T0, T0 + 24 * HOUR, T0 + 48 * HOUR
VISITORS: dict[str, list[Event]] = {
    # looked at two products and carted at once, in one visit
    "purposeful": [*_views(D1, "s1", 2), _cart(D1 + HOUR, "s1", _line("a"))],
    # a dozen products over an afternoon, never near the checkout
    "explorer": [
        *_views(D1, "s1", 6, "shoes"),
        *_views(D1 + HOUR, "s1", 6, "hats"),
        _cart(D1 + 2 * HOUR, "s1", _line("a")),
    ],
    # left a cart, came back to it on two other days
    "returns to the cart": [
        _cart(D1, "s1", _line("a")),
        _cart(D2, "s2", _line("a"), _line("b")),
        _cart(D3, "s3", _line("a"), _line("b")),
    ],
    # put three things in, took two out
    "removes items": [
        _cart(D1, "s1", _line("a"), _line("b"), _line("c")),
        _cart(D1 + HOUR, "s1", _line("a")),
    ],
    # two visits, comparing shoes
    "compares": [
        *_views(D1, "s1", 2, "shoes"),
        *_views(D2, "s2", 3, "shoes"),
        _cart(D2 + HOUR, "s2", _line("a")),
    ],
    "first visit": [_cart(D1, "s1", _line("a"))],
    "a past order": [_order(D1 - 24 * HOUR, 1), _cart(D1, "s1", _line("a"))],
    # the shop's history: 6 orders, 5 of them with a code (cartflow saw none)
    "imported vip hunter": [
        event(
            "customer.updated",
            D1 - HOUR,
            customer={"orders_count": 6, "total_spent": 30000, "discount_orders_count": 5},
        ),
        _cart(D1, "s1", _line("a")),
    ],
    "two coupons in three orders": [
        _order(D1 - 48 * HOUR, 1, "SAVE10"),
        _order(D1 - 24 * HOUR, 2, "SAVE10"),
        _order(D1 - 12 * HOUR, 3),
        _cart(D1, "s1", _line("a")),
    ],
    "one coupon in three orders": [
        _order(D1 - 48 * HOUR, 1, "SAVE10"),
        _order(D1 - 24 * HOUR, 2),
        _order(D1 - 12 * HOUR, 3),
        _cart(D1, "s1", _line("a")),
    ],
}
EXPECTED = {
    "purposeful": {"purposeful", "first_time"},
    "explorer": {"explorer", "first_time"},
    "returns to the cart": {"hesitant"},
    "removes items": {"hesitant", "first_time"},
    "compares": {"hesitant"},
    "first visit": {"purposeful", "first_time"},
    "a past order": {"purposeful", "returning"},
    "imported vip hunter": {"purposeful", "returning", "vip", "discount_hunter"},
    "two coupons in three orders": {"purposeful", "returning", "discount_hunter"},
    "one coupon in three orders": {"purposeful", "returning"},
}


def _apply(db: Database, events: list[Event]) -> None:
    for one in events:
        assert one.at is not None
        with db.transaction() as session:
            apply_event(session, one, now=one.at, idle=HOUR)


def _segments(db: Database, config: Config, now: datetime) -> set[str]:
    with db.reading() as session:
        profile = session.scalars(select(Profile).where(Profile.merged_into.is_(None))).one()
        cart = session.scalars(select(Cart).where(Cart.kind == "cart")).one()
        return set(build_context(session, config, profile, cart, now)["segments"])


@pytest.mark.parametrize("who", list(VISITORS))
def test_a_crafted_visitor_is_in_the_built_in_segments_the_playbook_names(
    who: str, db: Database, shipped_config: Config
) -> None:
    # Given a visitor who did what the playbook describes
    _apply(db, VISITORS[who])
    # When their segments are read an hour after their last event
    last = max(e.at for e in VISITORS[who] if e.at is not None)
    # Then they are in exactly the documented ones
    assert _segments(db, shipped_config, last + HOUR) == EXPECTED[who]


def test_the_figures_behind_hesitant_count_what_happened(db: Database) -> None:
    _apply(db, VISITORS["returns to the cart"])
    _apply(db, [_cart(D3 + HOUR, "s3", _line("b", 3))])  # a dropped, 2 more b, same visit
    with db.reading() as session:
        profile = session.scalars(select(Profile)).one()
        kept = read_features(session, profile.id, D3 + 2 * HOUR, profile.last_seen_at)
    # a (D1), b (D2), b more (D3 + 1h): adds; a gone: a removal; D2 and D3: returns
    assert (kept["cart_adds_7d"], kept["cart_removals_7d"], kept["cart_returns_7d"]) == (3, 1, 2)
    # and a week later, the window has passed
    with db.reading() as session:
        later = read_features(session, profile.id, D3 + 8 * 24 * HOUR, profile.last_seen_at)
    assert (later["cart_adds_7d"], later["cart_removals_7d"], later["cart_returns_7d"]) == (0, 0, 0)


def test_two_devices_then_a_login_add_up_into_one_persons_figures(db: Database) -> None:
    # Given a phone browsing anonymously and a laptop logged in, then the phone logs in
    phone = {"anonymous_id": "anon_phone", "customer_id": None}
    laptop = {"anonymous_id": "anon_laptop", "customer_id": "cust_1"}
    events = [
        *[e.model_copy(update=phone) for e in _views(D1, "phone-1", 4, "shoes")],
        *[e.model_copy(update=laptop) for e in _views(D2, "laptop-1", 2, "hats")],
        event("customer.identified", D2 + HOUR, anonymous_id="anon_phone", customer_id="cust_1"),
    ]
    _apply(db, events)
    with db.reading() as session:
        ident = session.get(Identity, ("customer_id", "cust_1"))
        assert ident is not None
        profile = session.get(Profile, ident.profile_id)
        assert profile is not None
        kept = read_features(session, profile.id, D2 + 2 * HOUR, profile.last_seen_at)
    # Then one person: both visits, every view, the phone's shoes the focus (4 of 6)
    assert kept["sessions"] == 2 and kept["product_views_7d"] == 6
    assert kept["product_views_session"] == 2  # the laptop's visit started last
    assert kept["top_category"] == "shoes" and kept["top_category_share"] == pytest.approx(4 / 6)


TEMPLATES = {
    "t/push.ru.j2": "{% block title %}Корзина{% endblock %}{% block body %}ждёт{% endblock %}"
}
SCENARIO = """\
scenario: nudge
trigger: {on: cart.abandoned, idle: 30m}
steps:
  - {id: push, after: 30m, channel: push, template: t/push}
"""


@pytest.mark.parametrize(
    ("reported", "via"),
    [("message.clicked", "push"), ("message.opened", "push"), (None, None)],
)
def test_returned_via_is_the_channel_of_the_message_that_brought_them_back(
    tmp_path: Path,
    db: Database,
    clock: SimulatedClock,
    recorder: ClockedRecorder,
    reported: str | None,
    via: str | None,
) -> None:
    # Given a push went out for an abandoned cart
    config = write_config(tmp_path / "config", SCENARIO, templates=TEMPLATES)
    sim = Simulation(build_engine(db, clock, ConfigHolder(config), recorder), clock)
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + 31 * timedelta(minutes=1))
    (push,) = recorder.sent
    # When the app reports it opened or clicked (or nothing)
    if reported is not None:
        sim.feed([event(reported, T0 + 40 * timedelta(minutes=1), delivery_id=push.delivery_id)])
    # Then visitor.returned_via names the push's channel
    with db.reading() as session:
        profile = session.scalars(select(Profile)).one()
        kept = read_features(session, profile.id, T0 + HOUR, profile.last_seen_at)
    assert kept["returned_via"] == via
