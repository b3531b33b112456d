"""The native event contract (docs/events.md): validation with dotted field paths
(engine/events.py), and idempotent ingestion (Engine.ingest / apply_events)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.events import MAX_BATCH, MAX_URL_LENGTH, EventError, parse_events
from cartflow.engine.service import Engine, EventConflict
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database, RawEvent
from cartflow.engine.timers import CART_IDLE

from ..factories import T0, cart_updated, journeys, order_completed, timers

GOOD: dict[str, Any] = {
    "id": "evt_01",
    "type": "cart.updated",
    "at": "2026-11-22T10:00:00Z",
    "anonymous_id": "anon_7",
    "customer_id": "cust_42",
    "session_id": "sess_3",
    "cart": {
        "id": "cart_9",
        "currency": "RUB",
        "url": "https://shop.example/cart/9",
        "items": [
            {
                "sku": "SKU-1",
                "name": "Кроссовки",
                "price": 4990,
                "quantity": 1,
                "url": "https://shop.example/p/1",
                "category": "shoes",
            }
        ],
    },
    "contact": {
        "email": "a@example.com",
        "phone": "+79991234567",
        "push_token": "t",
        "locale": "ru",
        "timezone": "Europe/Moscow",
        "first_name": "Анна",
    },
    "consent": {"email": True, "sms": True, "push": True},
}


def good(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(GOOD)
    body.update(changes)
    return body


def errors_of(body: Any) -> list[dict[str, str]]:
    with pytest.raises(EventError) as caught:
        parse_events(body)
    return caught.value.errors


# -- what is accepted ---------------------------------------------------------------------------
def test_the_design_example_is_accepted() -> None:
    (event,) = parse_events(good())
    assert event.type == "cart.updated"
    assert event.at == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert event.cart is not None and event.cart.value == Decimal(4990)


def test_a_batch_returns_every_event() -> None:
    events = parse_events({"events": [good(id="a"), good(id="b")]})
    assert [e.id for e in events] == ["a", "b"]


def test_offsets_are_normalised_to_utc() -> None:
    (event,) = parse_events(good(at="2026-11-22T13:00:00+03:00"))
    assert event.at == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert event.at.utcoffset() == timedelta(0)


def test_unknown_fields_are_kept() -> None:
    body = good(utm_source="newsletter")
    body["cart"]["items"][0]["color"] = "red"
    (event,) = parse_events(body)
    dumped = event.model_dump(mode="json")
    assert dumped["utm_source"] == "newsletter"
    assert dumped["cart"]["items"][0]["color"] == "red"


def test_a_batch_of_exactly_max_batch_is_accepted() -> None:
    assert len(parse_events({"events": [good(id=f"e{i}") for i in range(MAX_BATCH)]})) == 1000


# -- what is refused, and how it is explained ------------------------------------------------------
def item(**changes: Any) -> Any:
    return lambda body: body["cart"]["items"][0].update(changes)


def field(section: str, **changes: Any) -> Any:
    return lambda body: (body[section] if section else body).update(changes)


@pytest.mark.parametrize(
    ("mutate", "loc", "message"),
    [
        (item(price=-1), "cart.items.0.price", "greater than or equal to 0"),
        (item(price="abc"), "cart.items.0.price", "valid decimal"),
        (item(price="1.23456"), "cart.items.0.price", "4 decimal places"),
        (item(quantity=0), "cart.items.0.quantity", "greater than or equal to 1"),
        (lambda body: body["cart"]["items"][0].pop("sku"), "cart.items.0.sku", "Field required"),
        (field("cart", currency="rub"), "cart.currency", "pattern"),
        (field("contact", email="not-an-address"), "contact.email", "not an email address"),
        (field("contact", timezone="Mars/Olympus"), "contact.timezone", "unknown time zone"),
        (field("", type="cart.updatd"), "type", "'cart.updated'"),
        (field("", id=""), "id", "at least 1 character"),
        (field("", at="yesterday"), "at", "datetime"),
    ],
)
def test_bad_field_is_named_by_its_dotted_path(mutate: Any, loc: str, message: str) -> None:
    body = good()
    mutate(body)
    (error,) = errors_of(body)
    assert error["loc"] == loc
    assert message in error["msg"]
    assert not error["msg"].startswith("Value error")


def test_naive_timestamp_is_refused_with_a_hint() -> None:
    assert errors_of(good(at="2026-11-22T10:00:00")) == [
        {"loc": "at", "msg": "timestamp needs a time zone offset, e.g. 2026-11-22T10:00:00Z"}
    ]


def test_every_problem_is_reported_at_once() -> None:
    body = good()
    body["cart"]["items"][0].update(price=-1, quantity=0)
    body["contact"]["email"] = "nope"
    locs = sorted(e["loc"] for e in errors_of(body))
    assert locs == ["cart.items.0.price", "cart.items.0.quantity", "contact.email"]


def test_errors_in_a_batch_carry_the_event_index() -> None:
    bad = good(id="b")
    bad["cart"]["items"][0]["price"] = -5
    assert [e["loc"] for e in errors_of({"events": [good(id="a"), bad]})] == [
        "events.1.cart.items.0.price"
    ]


def test_batch_over_max_batch_is_refused() -> None:
    (error,) = errors_of({"events": [good(id=f"e{i}") for i in range(MAX_BATCH + 1)]})
    assert error["loc"] == "events"
    assert "at most 1000" in error["msg"]


def test_empty_batch_is_refused() -> None:
    assert errors_of({"events": []})[0]["loc"] == "events"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {k: v for k, v in GOOD.items() if k not in ("anonymous_id", "customer_id")},
            "needs anonymous_id or customer_id",
        ),
        ({k: v for k, v in GOOD.items() if k != "cart"}, "cart.updated needs a 'cart'"),
        (good(type="order.completed"), "order.completed needs an 'order'"),
        (good(type="consent.updated", consent={}), "consent.updated needs a 'consent'"),
    ],
)
def test_event_shape_errors_explain_what_is_missing(body: dict[str, Any], message: str) -> None:
    (error,) = errors_of(body)
    assert error["loc"] == "body"
    assert message in error["msg"]
    # ... and in a batch the same error points at the event
    (batched,) = errors_of({"events": [good(id="fine"), body]})
    assert batched["loc"] == "events.1"


@pytest.mark.parametrize("body", [[GOOD], "cart.updated", 42, None])
def test_non_object_body_is_refused(body: Any) -> None:
    (error,) = errors_of(body)
    assert error["loc"] == "body"
    assert "expected a JSON object" in error["msg"]


def test_event_error_message_lists_every_problem() -> None:
    body = good()
    body["cart"]["items"][0].update(price=-1, quantity=0)
    with pytest.raises(EventError, match=r"cart\.items\.0\.price: .*; cart\.items\.0\.quantity: "):
        parse_events(body)


# -- links: only http(s), since a message links to them (issue 13) ------------------------------
LINKS = {
    "cart.url": lambda body, url: body["cart"].update(url=url),
    "cart.items.0.url": lambda body, url: body["cart"]["items"][0].update(url=url),
    "cart.items.0.image": lambda body, url: body["cart"]["items"][0].update(image=url),
}
NOT_WEB_URLS = [
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    "  javascript:alert(1)",
    "java\tscript:alert(1)",
    "javascript://shop.example/%0aalert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "ftp://shop.example/p/1",
    "//evil.example/p/1",
    "/cart/9",
    "shop.example/cart/9",
    "https:/cart/9",
    "http://shop.example:port/",
    "https://[::1/",
]


@pytest.mark.parametrize("url", NOT_WEB_URLS)
@pytest.mark.parametrize("loc", list(LINKS))
def test_a_link_that_is_not_http_is_refused_with_its_path(loc: str, url: str) -> None:
    body = good()
    LINKS[loc](body, url)
    (error,) = errors_of({"events": [body]})
    assert error["loc"] == f"events.0.{loc}"
    assert "only http(s) URLs" in error["msg"] and "accepted" in error["msg"]


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/cart/9",
        "http://shop.example/p/1?utm_source=mail#top",
        "HTTPS://Shop.Example:8443/p/%D0%BA",
        "https://xn--e1afmkfd.xn--p1ai/корзина",
        "",
    ],
)
@pytest.mark.parametrize("loc", list(LINKS))
def test_http_and_https_links_are_accepted(loc: str, url: str) -> None:
    body = good()
    LINKS[loc](body, url)
    assert len(parse_events(body)) == 1


def test_a_link_longer_than_max_url_length_is_refused() -> None:
    body = good()
    body["cart"]["url"] = "https://shop.example/" + "a" * MAX_URL_LENGTH
    (error,) = errors_of(body)
    assert error["loc"] == "cart.url"
    assert f"at most {MAX_URL_LENGTH} characters" in error["msg"]


# -- NaN and Infinity: not JSON, refused wherever they are ----------------------------------------
@pytest.mark.parametrize(
    ("place", "loc", "name"),
    [
        (item(price=float("nan")), "events.0.cart.items.0.price", "NaN"),
        (item(quantity=float("inf")), "events.0.cart.items.0.quantity", "Infinity"),
        (field("", shop={"score": [1, float("-inf")]}), "events.0.shop.score.1", "-Infinity"),
        (item(colour_weight=float("nan")), "events.0.cart.items.0.colour_weight", "NaN"),
    ],
    ids=["price", "quantity", "nested-unknown-field", "unknown-item-field"],
)
def test_non_finite_numbers_are_refused_with_their_path(place: Any, loc: str, name: str) -> None:
    body = good()
    place(body)
    (error,) = errors_of({"events": [body]})
    assert error == {
        "loc": loc,
        "msg": f"{name} is not a JSON number; send a finite number or null",
    }


def test_a_float_that_overflows_to_infinity_is_refused() -> None:
    body = json.loads(json.dumps(good())[:-1] + ', "weight": 1e999}')
    (error,) = errors_of(body)
    assert error["loc"] == "weight"
    assert error["msg"].startswith("Infinity is not a JSON number")


# -- idempotent ingestion --------------------------------------------------------------------------
def test_the_same_event_ingested_twice_is_applied_once(engine: Engine, db: Database) -> None:
    # Given an event that was ingested and applied
    event = cart_updated(T0, event_id="evt_dup")
    assert engine.ingest([event]) == ["evt_dup"]
    assert engine.apply_events(["evt_dup"]) == 1

    # When the shop sends it again
    again = engine.ingest([event])

    # Then it is not new and applying it again does nothing
    assert again == []
    assert engine.apply_events(["evt_dup"]) == 0
    with db.sessions() as session:
        assert session.scalars(select(RawEvent.id)).all() == ["evt_dup"]


def test_duplicate_ids_in_one_batch_are_stored_once(engine: Engine) -> None:
    event = cart_updated(T0, event_id="evt_twice")
    assert engine.ingest([event, event]) == ["evt_twice"]


def test_a_replayed_id_with_different_content_is_a_conflict_and_changes_nothing(
    sim: Simulation, db: Database, clock: SimulatedClock
) -> None:
    # Given a cart whose idle timer is due at +30m
    sim.feed([cart_updated(T0, event_id="evt_same")])

    # When a different payload arrives later under the same event id
    with pytest.raises(EventConflict, match=r"evt_same.*different body"):
        sim.feed([cart_updated(T0 + timedelta(minutes=20), event_id="evt_same", items=[])])

    # Then it is refused: the cart is still full and its timer did not move
    (idle,) = timers(db)
    assert (idle.kind, idle.due_at) == (CART_IDLE, T0 + timedelta(minutes=30))
    sim.run_until(T0 + timedelta(hours=1))
    assert len(journeys(db)) == 1


def test_replaying_an_order_twice_exits_once(sim: Simulation, db: Database) -> None:
    # Given a running journey
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + timedelta(hours=1))
    order = order_completed(T0 + timedelta(hours=2), event_id="evt_order")

    # When the order event arrives twice
    sim.feed([order])
    sim.feed([order])

    # Then the journey exited once
    (journey,) = journeys(db)
    assert journey.exit_reason == "order.completed"


def test_unapplied_events_are_found_for_redriving(engine: Engine, clock: SimulatedClock) -> None:
    # Given an event that was stored but never applied (a lost broker message)
    engine.ingest([cart_updated(T0, event_id="evt_lost")])

    # When enough time passes
    assert engine.unapplied_event_ids(older_than=timedelta(minutes=5)) == []
    clock.advance(timedelta(minutes=6))

    # Then it is listed for re-driving, and once applied it is not
    assert engine.unapplied_event_ids(older_than=timedelta(minutes=5)) == ["evt_lost"]
    engine.apply_events(["evt_lost"])
    assert engine.unapplied_event_ids(older_than=timedelta(minutes=5)) == []


def test_a_lifetime_timestamp_out_of_range_is_a_field_error_not_a_crash() -> None:
    # The same rule as the event's own `at`: an error naming the field, never an exception
    body = {
        "id": "e1",
        "type": "customer.updated",
        "customer_id": "c1",
        "customer": {"orders_count": 1, "first_order_at": "0001-01-01T00:00:00+01:00"},
    }
    with pytest.raises(EventError) as refused:
        parse_events(body)
    assert refused.value.errors == [
        {"loc": "customer.first_order_at", "msg": "timestamp out of range once converted to UTC"}
    ]
