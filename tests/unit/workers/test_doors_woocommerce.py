"""The WooCommerce door (``POST /v1/woocommerce/webhooks``, workers/doors/woocommerce.py):
WooCommerce's documented order (tests/fixtures/doors/woocommerce_order.json), signed as
WooCommerce signs webhooks, ends the cart the plugin (integrations/woocommerce/) sent to
``POST /v1/events`` — on loopback, through uvicorn, applied by the real engine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.store.models import RawEvent
from cartflow.workers.doors.intake import ignored_counts

from ..factories import T0, ClockedRecorder, cart
from .conftest import FIXTURES, Api

SECRET, OLD_SECRET = "wc-webhook-secret", "wc-webhook-secret-before"
URL = "/v1/woocommerce/webhooks"


def plugin_cart() -> dict[str, Any]:
    """What the plugin posts for the order's cart, dated at T0."""
    body: dict[str, Any] = json.loads((FIXTURES / "woocommerce_cart_updated.json").read_text())
    body["at"] = T0.isoformat()
    return body


def documented_order(status: str = "processing", *, tagged: bool = True) -> dict[str, Any]:
    """WooCommerce's example order; ``tagged``: with the meta the plugin writes at checkout."""
    body: dict[str, Any] = json.loads((FIXTURES / "woocommerce_order.json").read_text())
    body["status"] = status
    body["date_paid_gmt"] = (T0 + timedelta(minutes=15)).replace(tzinfo=None).isoformat()
    if tagged:
        cart_event = plugin_cart()
        body["meta_data"] += [
            {"id": 13107, "key": "_cartflow_cart_id", "value": cart_event["cart"]["id"]},
            {"id": 13108, "key": "_cartflow_anonymous_id", "value": cart_event["anonymous_id"]},
        ]
    return body


def signature(raw: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def deliver(
    api: Api,
    body: Any,
    delivery: str,
    *,
    topic: str = "order.updated",
    secret: str | None = SECRET,
) -> Any:
    raw = json.dumps(body).encode()
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": topic.partition(".")[0],
        "X-WC-Webhook-Event": topic.partition(".")[2],
        "X-WC-Webhook-ID": "17",
        "X-WC-Webhook-Delivery-ID": delivery,
        "X-WC-Webhook-Source": "https://example.com/",
    }
    if secret is not None:
        headers["X-WC-Webhook-Signature"] = signature(raw, secret)
    return api.client.post(URL, content=raw, headers=headers)


def stored(db: Database) -> int:
    with db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(RawEvent)) or 0)


@pytest.fixture
def api(serve: Callable[..., Api], engine: Engine) -> Api:
    return serve(engine, {"woocommerce": [SECRET, OLD_SECRET]})


def test_the_paid_order_ends_the_plugins_cart_before_any_reminder(
    api: Api, sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given the plugin's cart.updated, posted to /v1/events with the API key
    posted = api.client.post(
        "/v1/events", json=plugin_cart(), headers={"Authorization": "Bearer key"}
    )
    assert posted.status_code == 202, posted.text
    api.apply()
    cart_id = plugin_cart()["cart"]["id"]
    early = cart(db, cart_id)
    assert early is not None and early.status == "active" and early.item_count == 3

    # When WooCommerce reports the order paid (processing) 20 minutes later
    sim.run_until(T0 + timedelta(minutes=20))
    answer = deliver(api, documented_order(), "d-1")
    assert answer.status_code == 202, answer.text
    api.apply()

    # Then the cart is paid and no reminder ever goes
    sim.run_until(T0 + timedelta(days=2))
    paid = cart(db, cart_id)
    assert paid is not None and paid.status == "ordered" and paid.order_id == "727"
    assert recorder.calls == []
    with db.reading() as session:
        event = session.get(RawEvent, "woocommerce-17-d-1")
    assert event is not None
    assert event.payload["order"] == {
        "id": "727",
        "cart_id": cart_id,
        "total": "29.35",
        "currency": "USD",
    }
    assert event.payload["contact"]["email"] == "john.doe@example.com"
    # date_paid_gmt has no offset: WooCommerce means UTC
    assert event.payload["at"] == "2026-11-22T07:15:00Z"


def test_without_the_plugins_meta_a_guest_order_gets_an_id_of_its_own(api: Api) -> None:
    answer = deliver(api, documented_order(tagged=False), "d-guest")
    assert answer.status_code == 202
    with api.engine.db.reading() as session:
        event = session.get(RawEvent, "woocommerce-17-d-guest")
    assert event is not None
    assert event.payload["anonymous_id"] == "woocommerce-order-727"
    assert "cart_id" not in event.payload["order"]


def test_an_order_on_hold_awaiting_payment_ends_the_reminders(api: Api, db: Database) -> None:
    answer = deliver(api, documented_order("on-hold"), "d-hold")
    assert answer.status_code == 202, answer.text
    with db.reading() as session:
        event = session.get(RawEvent, "woocommerce-17-d-hold")
    assert event is not None and event.type == "order.completed"


@pytest.mark.parametrize("status", ["pending", "failed", "cancelled", "refunded"])
def test_an_order_that_is_not_paid_is_200_and_ignored(api: Api, db: Database, status: str) -> None:
    answer = deliver(api, documented_order(status), f"d-{status}")
    assert answer.status_code == 200 and status in answer.json()["ignored"]
    assert stored(db) == 0


def test_the_creation_ping_is_200_and_stores_nothing(api: Api, db: Database) -> None:
    answer = api.client.post(
        URL,
        content=b"webhook_id=17",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    assert ignored_counts(api.app)[("woocommerce", "ping")] == 1
    assert stored(db) == 0


@pytest.mark.parametrize("secret", [None, "not-the-secret"], ids=["unsigned", "wrong-secret"])
def test_an_unsigned_or_badly_signed_order_is_401_and_nothing_stored(
    api: Api, db: Database, secret: str | None
) -> None:
    answer = deliver(api, documented_order(), "d-bad", secret=secret)
    assert answer.status_code == 401
    assert "X-WC-Webhook-Signature" in answer.json()["error"]
    assert stored(db) == 0


def test_a_redelivery_is_stored_once_and_the_old_secret_still_signs(api: Api, db: Database) -> None:
    body = documented_order()
    assert deliver(api, body, "d-same").json() == {"accepted": 1, "duplicates": 0}
    again = deliver(api, body, "d-same", secret=OLD_SECRET)
    assert (again.status_code, again.json()) == (202, {"accepted": 0, "duplicates": 1})
    assert stored(db) == 1


def test_other_topics_are_ignored_and_a_missing_delivery_id_is_400(api: Api, db: Database) -> None:
    assert deliver(api, {"id": 5}, "d-p", topic="product.updated").status_code == 200
    assert deliver(api, documented_order(), "").status_code == 400
    assert stored(db) == 0


def test_an_order_with_a_bad_total_is_422_naming_it(api: Api, db: Database) -> None:
    body = documented_order()
    body["total"] = "-29.35"
    answer = deliver(api, body, "d-422")
    assert answer.status_code == 422
    assert [error["loc"] for error in answer.json()["errors"]] == ["total"]
    assert stored(db) == 0


def test_the_door_is_off_without_a_secret(serve: Callable[..., Api], engine: Engine) -> None:
    api = serve(engine, {"woocommerce": []})
    answer = deliver(api, documented_order(), "d-off")
    assert answer.status_code == 404 and "CARTFLOW_WOOCOMMERCE_SECRETS" in answer.text
