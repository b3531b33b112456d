"""The generic JSON door (``POST /v1/doors/{name}``, workers/doors/generic.py): a door
described under ``doors:`` in ``scenarios.yaml`` (engine/scenario/door_model.py) takes a
platform's own JSON, signed the Standard Webhooks way (signed here with the
``standardwebhooks`` package, as a sender would), and stores native events — on loopback,
through uvicorn, applied by the real engine. A mistake in the YAML is a file:line:column.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.scenario.loader import Config, load_config
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.store.models import RawEvent
from cartflow.providers.registry import validators
from cartflow.workers.doors.intake import ignored_counts

from ..factories import (
    SETTINGS_YAML,
    T0,
    ClockedRecorder,
    build_engine,
    cart,
    config_problems,
    write_config,
)
from .conftest import Api

ROOT = Path(__file__).resolve().parents[3]
SECRET = "whsec_" + base64.b64encode(b"insales-door-secret-32-bytes-long").decode()
#: An InSales-like shop: carts and orders in its own shape.
DOORS_YAML = """\
doors:
  insales:
    secret: ${CARTFLOW_DOOR_INSALES_SECRET}
    type_from: topic
    payloads:
      carts/update:
        type: cart.updated
        at: updated_at
        customer_id: client.id
        cart:
          id: cart.id
          currency: "'RUB'"
          url: cart.link
          items:
            each: cart.lines
            sku: variant_id
            name: title
            price: sale_price
            quantity: quantity
        contact: {email: client.email, phone: client.phone, first_name: client.name}
        consent: {email: client.subscribe}
      orders/create:
        type: order.completed
        at: created_at
        customer_id: client.id
        order: {id: number, cart_id: cart_id, total: total_price, currency: "'RUB'"}
"""


def shop_cart(at: datetime, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "topic": "carts/update",
        "updated_at": at.isoformat(),
        "client": {"id": 3091, "email": "anna@example.com", "name": "Анна", "subscribe": True},
        "cart": {
            "id": 77,
            "link": "https://shop.example/cart/77",
            "lines": [
                {"variant_id": 501, "title": "Кроссовки", "sale_price": "4990.00", "quantity": 2}
            ],
        },
    }
    body.update(changes)
    return body


def shop_order(at: datetime) -> dict[str, Any]:
    return {
        "topic": "orders/create",
        "created_at": at.isoformat(),
        "number": 1001,
        "cart_id": 77,
        "total_price": 9980,
        "client": {"id": 3091},
    }


@pytest.fixture
def door_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("CARTFLOW_DOOR_INSALES_SECRET", SECRET)
    scenario = (ROOT / "scenarios" / "abandoned_cart.yaml").read_text(encoding="utf-8")
    settings = SETTINGS_YAML.format(templates=tmp_path / "templates") + DOORS_YAML
    return write_config(tmp_path, scenario, settings)


@pytest.fixture
def api(
    serve: Callable[..., Api],
    db: Database,
    clock: SimulatedClock,
    door_config: Config,
    recorder: ClockedRecorder,
) -> Api:
    return serve(build_engine(db, clock, ConfigHolder(door_config), recorder))


def deliver(
    api: Api,
    body: Any,
    message_id: str,
    *,
    sent_at: datetime = T0,
    secret: str = SECRET,
    door: str = "insales",
) -> Any:
    raw = json.dumps(body, ensure_ascii=False)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, sent_at, raw),
    }
    return api.client.post(f"/v1/doors/{door}", content=raw.encode(), headers=headers)


def stored(db: Database) -> int:
    with db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(RawEvent)) or 0)


def test_the_shops_cart_becomes_a_reminder_and_its_order_ends_the_next(
    api: Api, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    sim = Simulation(api.engine, clock)
    # Given the shop's cart, mapped by the door's paths
    answer = deliver(api, shop_cart(T0), "msg_1")
    assert answer.status_code == 202, answer.text
    api.apply()
    row = cart(db, "77")
    assert row is not None and row.status == "active" and row.currency == "RUB"
    assert (row.item_count, row.url) == (2, "https://shop.example/cart/77")
    with db.reading() as session:
        event = session.get(RawEvent, "insales-msg_1")
    assert event is not None and event.payload["customer_id"] == "3091"
    assert event.payload["cart"]["items"] == [
        {"sku": "501", "name": "Кроссовки", "price": "4990.00", "quantity": 2}
    ]
    # When the shopper stays away, the reminder goes (by email: the one contact given)
    sim.run_until(T0 + timedelta(hours=25))
    assert {channel for channel, _, _ in recorder.calls} == {"email"}

    # And a second cart, paid within the hour, gets nothing
    before = len(recorder.calls)
    later = T0 + timedelta(hours=26)
    second = shop_cart(later, cart={**shop_cart(later)["cart"], "id": 78})
    sim.run_until(later)
    assert deliver(api, second, "msg_2", sent_at=later).status_code == 202
    api.apply()
    order = shop_order(later + timedelta(minutes=10))
    order["cart_id"] = 78
    sim.run_until(later + timedelta(minutes=10))
    sent = deliver(api, order, "msg_3", sent_at=later + timedelta(minutes=10))
    assert sent.status_code == 202, sent.text
    api.apply()
    sim.run_until(later + timedelta(days=2))
    paid = cart(db, "78")
    assert paid is not None and paid.status == "ordered" and paid.order_id == "1001"
    assert len(recorder.calls) == before


def test_a_redelivery_is_stored_once(api: Api, db: Database) -> None:
    body = shop_cart(T0)
    assert deliver(api, body, "msg_same").json() == {"accepted": 1, "duplicates": 0}
    assert deliver(api, body, "msg_same").json() == {"accepted": 0, "duplicates": 1}
    assert stored(db) == 1


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"secret": "whsec_" + base64.b64encode(b"another secret").decode()}, 401),
        ({"sent_at": T0 - timedelta(minutes=6)}, 401),
        ({"sent_at": T0 + timedelta(minutes=6)}, 401),
        ({"sent_at": T0 - timedelta(minutes=4)}, 202),
    ],
    ids=["other-secret", "too-old", "too-new", "within-5-min"],
)
def test_the_signature_and_its_timestamp_are_checked_against_the_engines_clock(
    api: Api, db: Database, changes: dict[str, Any], status: int
) -> None:
    answer = deliver(api, shop_cart(T0 - timedelta(minutes=6)), "msg_sig", **changes)
    assert answer.status_code == status, answer.text
    assert stored(db) == (1 if status == 202 else 0)


@pytest.mark.parametrize("drop", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_401(api: Api, db: Database, drop: str) -> None:
    raw = json.dumps(shop_cart(T0))
    headers = {
        "webhook-id": "msg_h",
        "webhook-timestamp": str(int(T0.timestamp())),
        "webhook-signature": Webhook(SECRET).sign("msg_h", T0, raw),
    }
    del headers[drop]
    answer = api.client.post("/v1/doors/insales", content=raw, headers=headers)
    assert answer.status_code == 401 and stored(db) == 0


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        (
            {"cart": {"id": 77, "lines": [{"variant_id": 1, "title": "x"}]}},
            "cart.lines[0].sale_price",
        ),
        ({"cart": {"id": 77}}, "cart.lines"),
        ({"cart": {"lines": []}}, "cart.id"),
        ({"client": {"email": "a@example.com"}}, "client.id"),
        ({"client": {"id": 1, "subscribe": "yes"}}, "client.subscribe"),
        ({"updated_at": "2026-11-22 07:00"}, "updated_at"),
    ],
    ids=[
        "no-price",
        "no-items-list",
        "no-cart-id",
        "no-customer",
        "consent-not-bool",
        "naive-time",
    ],
)
def test_a_payload_that_does_not_map_is_422_naming_the_path(
    api: Api, db: Database, change: dict[str, Any], loc: str
) -> None:
    answer = deliver(api, shop_cart(T0, **change), "msg_422")
    assert answer.status_code == 422, answer.text
    assert loc in [error["loc"] for error in answer.json()["errors"]]
    assert stored(db) == 0


def test_a_payload_of_another_kind_is_200_ignored_and_an_unknown_door_404(
    api: Api, db: Database
) -> None:
    answer = deliver(api, {"topic": "products/update", "id": 5}, "msg_p")
    assert answer.status_code == 200 and "products/update" in answer.json()["ignored"]
    assert ignored_counts(api.app)[("insales", "products/update")] == 1
    assert deliver(api, shop_cart(T0), "msg_x", door="tilda").status_code == 404
    assert stored(db) == 0


def test_a_door_whose_secret_is_left_empty_is_off(
    serve: Callable[..., Api],
    db: Database,
    clock: SimulatedClock,
    recorder: ClockedRecorder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CARTFLOW_DOOR_INSALES_SECRET", raising=False)
    scenario = (ROOT / "scenarios" / "abandoned_cart.yaml").read_text(encoding="utf-8")
    doors = DOORS_YAML.replace(
        "${CARTFLOW_DOOR_INSALES_SECRET}", "${CARTFLOW_DOOR_INSALES_SECRET:-}"
    )
    config = write_config(
        tmp_path, scenario, SETTINGS_YAML.format(templates=tmp_path / "templates") + doors
    )
    api = serve(build_engine(db, clock, ConfigHolder(config), recorder))
    answer = deliver(api, shop_cart(T0), "msg_off")
    assert answer.status_code == 404 and "off" in answer.json()["error"]


# -- the YAML --------------------------------------------------------------------------------
problems_of = config_problems


#: The line of ``doors:`` in the written scenarios.yaml.
DOORS_LINE = SETTINGS_YAML.count("\n") + 1


@pytest.mark.parametrize(
    ("yaml", "line", "column", "message"),
    [
        (
            "doors:\n  shop:\n    secret: whsec_c2VjcmV0\n    type_from: topic\n"
            "    payloads:\n      x: {type: order.completed, customer_id: a, order: {id: b}}\n"
            "    tolerance: 10m\n",
            6,
            5,
            "unknown key 'tolerance'",
        ),
        (
            "doors:\n  shop:\n    secret: whsec_c2VjcmV0\n    type_from: 'topic[0'\n"
            "    payloads:\n      x: {type: order.completed, customer_id: a, order: {id: b}}\n",
            3,
            17,
            "not a JMESPath expression",
        ),
        (
            "doors:\n  shop:\n    secret: plain-text\n    type_from: topic\n"
            "    payloads:\n      x: {type: order.completed, customer_id: a, order: {id: b}}\n",
            2,
            13,
            "whsec_",
        ),
        (
            "doors:\n  shop:\n    secret: whsec_c2VjcmV0\n    type_from: topic\n"
            "    payloads:\n      x: {type: cart.updated, customer_id: a, cart: {id: b}}\n",
            5,
            10,
            "cart.id and cart.items",
        ),
        (
            "doors:\n  shop:\n    secret: whsec_c2VjcmV0\n    type_from: topic\n"
            "    payloads:\n      x: {type: order.completed, customer_id: a,\n"
            "          order: {id: b, totl: c}}\n",
            6,
            26,
            "unknown key 'totl' — did you mean 'total'?",
        ),
        (
            "doors:\n  shop:\n    secret: whsec_c2VjcmV0\n    type_from: topic\n"
            "    payloads:\n      x: {type: message.opened, customer_id: a}\n",
            5,
            10,
            "a message.opened needs delivery_id",
        ),
        (
            "doors:\n  shop:\n    secret: whsec_c2VjcmV0\n    type_from: topic\n"
            "    payloads:\n      x: {type: order.complete, customer_id: a, order: {id: b}}\n",
            5,
            17,
            "order.complete",
        ),
    ],
    ids=[
        "unknown-key",
        "bad-jmespath",
        "bad-secret",
        "cart-without-items",
        "typo-in-order",
        "message-without-delivery",
        "unknown-type",
    ],
)
def test_a_mistake_in_the_doors_yaml_is_a_problem_at_its_file_line_and_column(
    tmp_path: Path, yaml: str, line: int, column: int, message: str
) -> None:
    found = problems_of(tmp_path, yaml)
    here = [p for p in found if message in p]
    assert here, found
    where = here[0].split(": ", 1)[0]
    assert where.endswith(f"scenarios.yaml:{DOORS_LINE + line}:{column}"), (where, found)


def test_a_secret_from_the_environment_is_never_shown_in_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARTFLOW_DOOR_SHOP_SECRET", "hunter2-not-whsec")
    found = problems_of(
        tmp_path,
        "doors:\n  shop:\n    secret: ${CARTFLOW_DOOR_SHOP_SECRET}\n    type_from: topic\n"
        "    payloads:\n      x: {type: order.completed, customer_id: a, order: {id: b}}\n",
    )
    assert any("whsec_" in p for p in found) and not any("hunter2" in p for p in found)


def test_the_shipped_configuration_loads_with_no_doors() -> None:
    assert load_config(ROOT / "scenarios.yaml", provider_types=validators()).settings.doors == {}
