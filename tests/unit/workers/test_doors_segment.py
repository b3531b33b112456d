"""The Segment door (``POST /v1/segment/*``, workers/doors/segment.py): Segment's documented
e-commerce v2 examples (tests/fixtures/doors/segment_ecommerce_v2.json) sent as Segment's
HTTP API sends them — basic auth with the write key — become native events the real
engine applies, on loopback through uvicorn; and the real ``segment-analytics-python``
library, pointed at the door, delivers a cart that cartflow reminds."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from segment.analytics.client import Client as SegmentClient
from sqlalchemy import func, select

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.store.models import Cart, Consent, Contact, RawEvent, SegmentCart

from ..factories import (
    SETTINGS_YAML,
    T0,
    ClockedRecorder,
    build_engine,
    cart,
    config_problems,
    shipped_with,
)
from .conftest import FIXTURES, Api

KEY, OLD_KEY = "wk_live_new", "wk_live_old"
SPEC: dict[str, Any] = json.loads((FIXTURES / "segment_ecommerce_v2.json").read_text())


def auth(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def track(
    event: str, at: datetime, properties: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "messageId": extra.pop("messageId", uuid.uuid4().hex),
        "userId": "user-1",
        "anonymousId": "anon-1",
        "timestamp": at.isoformat(),
        "properties": SPEC[event] if properties is None else properties,
        **extra,
    }


def identify(at: datetime, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": uuid.uuid4().hex,
        "userId": "user-1",
        "anonymousId": "anon-1",
        "timestamp": at.isoformat(),
        "traits": {"email": "shopper@example.com", "firstName": "Anna", **traits},
    }


def send(api: Api, *messages: dict[str, Any], key: str | None = KEY) -> Any:
    headers = auth(key) if key is not None else {}
    return api.client.post("/v1/segment/batch", json={"batch": list(messages)}, headers=headers)


def stored(db: Database) -> int:
    with db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(RawEvent)) or 0)


def running(db: Database, key: str) -> list[tuple[str, int]]:
    with db.reading() as session:
        row = session.get(SegmentCart, key)
        return [(i["sku"], i["quantity"]) for i in row.items] if row else []


@pytest.fixture
def api(serve: Callable[..., Api], engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Api:
    monkeypatch.setenv("CARTFLOW_SEGMENT_CONSENT_TRAITS", "email=email_opt_in,sms=sms_opt_in")
    return serve(engine, {"segment": [KEY, OLD_KEY]})


def test_product_viewed_is_a_product_view_with_the_product(api: Api, db: Database) -> None:
    answer = send(api, track("Product Viewed", T0))
    assert answer.status_code == 202, answer.text
    with db.reading() as session:
        body = session.scalars(select(RawEvent.payload)).one()
    assert body["type"] == "product.viewed" and body["customer_id"] == "user-1"
    assert body["product"]["sku"] == "507f1f77bcf86cd799439011"
    assert body["product"]["currency"] == "USD" and body["product"]["category"] == "Games"
    assert body["product"]["image"] == "https://www.example.com/product/path.jpg"


def test_added_and_removed_products_become_whole_cart_snapshots(api: Api, db: Database) -> None:
    # Given the documented Product Added, twice, for one cart, and a second product
    first = SPEC["Product Added"]
    other = {**first, "product_id": "505bd76785ebb509fc183733", "name": "Uno", "price": 3}
    removed = {**first, "quantity": 1}
    answers = [
        send(api, track("Product Added", T0, first)),
        send(api, track("Product Added", T0 + timedelta(seconds=1), first)),
        send(api, track("Product Added", T0 + timedelta(seconds=2), other)),
        send(api, track("Product Removed", T0 + timedelta(seconds=3), removed)),
    ]
    assert [a.status_code for a in answers] == [202] * 4
    assert api.apply() == 4

    # Then the running cart and cartflow's cart hold the whole cart after every change
    key = "segment-skdjsidjsdkdj29j"
    assert running(db, key) == [("507f1f77bcf86cd799439011", 1), ("505bd76785ebb509fc183733", 1)]
    row = cart(db, key)
    assert row is not None and row.item_count == 2 and row.value == Decimal("21.99")
    with db.reading() as session:
        bodies = session.scalars(select(RawEvent.payload).order_by(RawEvent.at)).all()
    assert [sum(i["quantity"] for i in b["cart"]["items"]) for b in bodies] == [1, 2, 3, 2]


def test_removing_the_last_product_empties_the_cart(api: Api, db: Database) -> None:
    added = SPEC["Product Added"]
    send(api, track("Product Added", T0, added))
    send(api, track("Product Removed", T0 + timedelta(seconds=1), added))
    assert api.apply() == 2
    row = cart(db, "segment-skdjsidjsdkdj29j")
    assert row is not None and row.status == "emptied"


def test_cart_viewed_replaces_the_lines(api: Api, db: Database) -> None:
    assert send(api, track("Cart Viewed", T0)).status_code == 202
    assert api.apply() == 1
    row = cart(db, "segment-d92jd29jd92jd29j92d92jd")
    assert row is not None and row.item_count == 2 and row.value == Decimal("22")


def test_an_order_finds_its_cart_by_the_checkout_seen_before(api: Api, db: Database) -> None:
    # Given a cart, the documented Checkout Started (no cart_id) and a step by checkout_id
    send(api, track("Product Added", T0))
    send(api, track("Checkout Started", T0 + timedelta(minutes=1)))
    step = {**SPEC["Checkout Step Viewed"]}
    send(api, track("Checkout Step Viewed", T0 + timedelta(minutes=2), step))
    # When the documented Order Completed arrives (its order_id is Checkout Started's)
    send(api, track("Order Completed", T0 + timedelta(minutes=3)))
    assert api.apply() == 4

    # Then it ends the cart it was checked out from, with its coupon and total
    row = cart(db, "segment-skdjsidjsdkdj29j")
    assert row is not None and row.status == "ordered"
    with db.reading() as session:
        bodies = session.scalars(select(RawEvent.payload).order_by(RawEvent.at)).all()
    assert bodies[1]["type"] == "checkout.started"
    assert bodies[1]["cart"]["id"] == "segment-skdjsidjsdkdj29j"
    assert bodies[2]["checkout"] == {"step": "2"}
    order = bodies[3]["order"]
    assert order == {
        "id": "50314b8e9bcf000000000000",
        "cart_id": "segment-skdjsidjsdkdj29j",
        "total": "27.5",
        "currency": "USD",
        "discount_code": "hasbros",
    }


def test_an_order_with_cart_id_is_linked_by_it(api: Api, db: Database) -> None:
    send(api, track("Product Added", T0))
    props = {**SPEC["Order Completed"], "cart_id": "skdjsidjsdkdj29j", "checkout_id": "x"}
    props["order_id"] = "other-order"
    send(api, track("Order Completed", T0 + timedelta(minutes=1), props))
    assert api.apply() == 2
    row = cart(db, "segment-skdjsidjsdkdj29j")
    assert row is not None and row.status == "ordered"


def test_identify_gives_the_contact_and_consent_from_the_configured_traits(
    api: Api, db: Database
) -> None:
    answer = send(api, identify(T0, email_opt_in=True, sms_opt_in="unsubscribed"))
    assert answer.status_code == 202, answer.text
    assert api.apply() == 1
    with db.reading() as session:
        emails = session.scalars(select(Contact.address).where(Contact.channel == "email")).all()
        consent = dict(session.execute(select(Consent.channel, Consent.granted)).all())
    assert emails == ["shopper@example.com"] and consent == {"email": True, "sms": False}


def test_a_consent_trait_cartflow_cannot_read_is_422_and_nothing_is_stored(
    api: Api, db: Database
) -> None:
    answer = send(api, track("Product Viewed", T0), identify(T0, email_opt_in="maybe"))
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["loc"] == "batch.1.traits.email_opt_in"
    assert stored(db) == 0


def test_a_bad_or_missing_write_key_is_401_and_nothing_is_stored(api: Api, db: Database) -> None:
    assert send(api, track("Product Added", T0), key="wk_guess").status_code == 401
    assert send(api, track("Product Added", T0), key=None).status_code == 401
    assert stored(db) == 0 and running(db, "segment-skdjsidjsdkdj29j") == []
    assert send(api, track("Product Added", T0), key=OLD_KEY).status_code == 202  # rotation


def test_a_message_sent_again_is_applied_once_and_its_cart_change_too(
    api: Api, db: Database
) -> None:
    message = track("Product Added", T0, messageId="m-1")
    assert send(api, message).json() == {"accepted": 1, "duplicates": 0}
    again = send(api, message)  # the SDK retried after a lost answer
    assert again.status_code == 202 and again.json()["accepted"] == 0
    assert stored(db) == 1
    assert running(db, "segment-skdjsidjsdkdj29j") == [("507f1f77bcf86cd799439011", 1)]


def test_one_bad_message_refuses_the_whole_batch_naming_it(api: Api, db: Database) -> None:
    bad = track("Product Added", T0, {**SPEC["Product Added"], "quantity": 0})
    answer = send(api, track("Product Viewed", T0), bad)
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {"loc": "batch.1.properties.quantity", "msg": "expected a whole number ≥ 1"}
    ]
    assert stored(db) == 0 and running(db, "segment-skdjsidjsdkdj29j") == []


def test_a_message_without_message_id_is_422(api: Api) -> None:
    message = track("Product Viewed", T0)
    del message["messageId"]
    answer = send(api, message)
    assert answer.status_code == 422 and answer.json()["errors"][0]["loc"] == "batch.0.messageId"


def test_an_event_cartflow_does_not_read_is_200_ignored(api: Api, db: Database) -> None:
    answer = send(api, track("Promotion Viewed", T0, {"promotion_id": "p1"}))
    assert answer.status_code == 200 and "Promotion Viewed" in answer.json()["ignored"]
    assert stored(db) == 0


def test_single_calls_and_gzip_bodies_are_read(api: Api, db: Database) -> None:
    one = api.client.post("/v1/segment/track", json=track("Product Viewed", T0), headers=auth(KEY))
    assert one.status_code == 202, one.text
    raw = gzip.compress(json.dumps({"batch": [track("Product Viewed", T0)]}).encode())
    headers = {**auth(KEY), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    zipped = api.client.post("/v1/segment/batch", content=raw, headers=headers)
    assert zipped.status_code == 202, zipped.text
    assert stored(db) == 2


def test_the_door_is_off_without_a_write_key(serve: Callable[..., Api], engine: Engine) -> None:
    api = serve(engine, {"segment": []})
    assert send(api, track("Product Viewed", T0)).status_code == 404


def test_the_real_segment_library_delivers_a_cart_that_cartflow_reminds(
    api: Api, sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given the shop's own Segment library, pointed at cartflow's door
    client = SegmentClient(KEY, host=f"{api.url}/v1/segment", sync_mode=True, gzip=True)
    client.identify("user-1", {"email": "shopper@example.com", "email_opt_in": True}, timestamp=T0)
    client.track("user-1", "Product Added", SPEC["Product Added"], timestamp=T0)
    client.track("user-1", "Checkout Started", SPEC["Checkout Started"], timestamp=T0)
    client.flush()
    assert stored(db) == 3
    assert api.apply() == 3
    row = cart(db, "segment-skdjsidjsdkdj29j")
    assert row is not None and row.status == "active"

    # When the shopper stays away, then cartflow reminds them by email after the idle time
    sim.run_until(T0 + timedelta(minutes=29))
    assert recorder.calls == []
    sim.run_until(T0 + timedelta(hours=25))
    sent = [(channel, at) for channel, at, _ in recorder.calls]
    assert sent and {channel for channel, _ in sent} == {"email"}
    assert min(at for _, at in sent) >= T0 + timedelta(minutes=30)
    with db.reading() as session:
        assert session.get(Cart, "segment-skdjsidjsdkdj29j") is not None


SEGMENT_YAML = "segment:\n  consent_traits:\n    email: newsletter\n"


def test_consent_traits_in_scenarios_yaml_replace_the_environments(
    serve: Callable[..., Api],
    db: Database,
    clock: SimulatedClock,
    recorder: ClockedRecorder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given scenarios.yaml names `newsletter` for email, and the environment other traits
    monkeypatch.setenv("CARTFLOW_SEGMENT_CONSENT_TRAITS", "email=email_opt_in,sms=sms_opt_in")
    config = shipped_with(tmp_path, SEGMENT_YAML)
    api = serve(build_engine(db, clock, ConfigHolder(config), recorder), {"segment": [KEY]})
    # When an identify carries all three
    answer = send(api, identify(T0, newsletter="subscribed", email_opt_in=False, sms_opt_in=True))
    assert answer.status_code == 202, answer.text
    assert api.apply() == 1
    # Then only the configured trait gave consent: the environment's are not read
    with db.reading() as session:
        consent = dict(session.execute(select(Consent.channel, Consent.granted)).all())
    assert consent == {"email": True}


@pytest.mark.parametrize(
    ("yaml", "where", "message"),
    [
        ("segment:\n  consent_traits:\n    fax: opt_in\n", (3, 10), "unknown channel 'fax'"),
        ("segment:\n  consent_traits:\n    email: 'has space'\n", (3, 13), "expected form"),
        ("segment:\n  traits: {}\n", (2, 3), "unknown key 'traits'"),
    ],
)
def test_a_bad_segment_setting_is_refused_at_its_line_and_column(
    tmp_path: Path, yaml: str, where: tuple[int, int], message: str
) -> None:
    problems = config_problems(tmp_path, yaml)
    first = SETTINGS_YAML.count("\n")
    line, column = where
    assert any(f":{first + line}:{column}:" in p and message in p for p in problems), problems
