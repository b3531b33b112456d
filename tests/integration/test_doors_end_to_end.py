"""The Shopify door through the production wiring: Shopify's documented ``checkouts/create``
and ``orders/create`` samples, signed as Shopify signs them, posted to
``POST /v1/shopify/webhooks`` → Dramatiq on Redis → real worker threads → PostgreSQL →
the dispatcher → webhook providers → a fake provider server.

Events are dated in the past (the engine runs on the real clock here): a checkout last
updated 25 hours ago has its idle timer and every step due at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cartflow.engine.store.models import Cart, RawEvent
from cartflow.workers.runtime import Runtime

from .conftest import ago, wait_until
from .fake_provider import FakeProvider

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "doors"
SECRET = "shpss_integration_secret"
TOKEN = "eeafa272cebfd4b22385bc4b645e762c"
CART_ID = f"shopify-cart-{TOKEN}"


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"shopify_{name}.json").read_text())
    return data


def checkout(at: datetime) -> dict[str, Any]:
    body = sample("checkouts_create")
    body["updated_at"] = at.isoformat()
    body["customer"]["email_marketing_consent"] = {"state": "subscribed"}
    return body


def order(at: datetime) -> dict[str, Any]:
    body = sample("orders_create")
    body.update(cart_token=TOKEN, checkout_token="123123123", processed_at=at.isoformat())
    body["customer"]["id"] = 603851970716743426
    return body


@pytest.fixture
def runtime(make_runtime: Callable[..., Runtime]) -> Runtime:
    runtime = make_runtime(shopify_secrets=(SECRET,))
    runtime.start_worker(threads=4)
    return runtime


@pytest.fixture
def client(runtime: Runtime) -> Iterator[httpx.Client]:
    port = runtime.start_api("127.0.0.1", 0)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client


def deliver(client: httpx.Client, topic: str, body: dict[str, Any], webhook_id: str) -> None:
    raw = json.dumps(body).encode()
    digest = hmac.new(SECRET.encode(), raw, hashlib.sha256).digest()
    answer = client.post(
        "/v1/shopify/webhooks",
        content=raw,
        headers={
            "X-Shopify-Topic": topic,
            "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Hmac-SHA256": base64.b64encode(digest).decode(),
        },
    )
    assert answer.status_code == 202, answer.text


def status_of(runtime: Runtime, cart_id: str) -> str | None:
    with runtime.db.sessions() as session:
        return session.scalar(select(Cart.status).where(Cart.id == cart_id))


def applied(runtime: Runtime, event_id: str) -> bool:
    with runtime.db.sessions() as session:
        row = session.get(RawEvent, event_id)
        return row is not None and row.applied_at is not None


def test_a_shopify_checkout_left_a_day_ago_gets_its_email(
    runtime: Runtime, client: httpx.Client, fake_provider: FakeProvider
) -> None:
    # Given Shopify's checkout sample, last updated 25 hours ago, for a subscribed customer
    deliver(client, "checkouts/create", checkout(ago(hours=25)), "wh-e2e-1")
    # When the dispatcher runs
    runtime.start_dispatcher(interval=0.2, lease=10)
    # Then the email (the one channel with a contact and consent) goes to the checkout's
    # address, with the checkout's recovery link
    received = fake_provider.wait_for(lambda r: any(x.channel == "email" for x in r))
    email = next(r for r in received if r.channel == "email")
    assert email.body["to"] == "example@email.com"
    assert status_of(runtime, CART_ID) == "abandoned"


def test_after_the_order_a_late_checkout_update_sends_nothing(
    runtime: Runtime, client: httpx.Client, fake_provider: FakeProvider
) -> None:
    # Given the checkout (25 hours ago) and then its order (24 hours ago), both applied
    deliver(client, "checkouts/create", checkout(ago(hours=25)), "wh-e2e-2")
    deliver(client, "orders/create", order(ago(hours=24)), "wh-e2e-3")
    wait_until(lambda: status_of(runtime, CART_ID) == "ordered", message="the order applied")
    # When Shopify retries a checkouts/update from before the order, hours late
    deliver(client, "checkouts/update", checkout(ago(hours=24, minutes=30)), "wh-e2e-4")
    wait_until(lambda: applied(runtime, "shopify-wh-e2e-4"), message="the late update applied")
    runtime.start_dispatcher(interval=0.2, lease=10)
    time.sleep(3.0)  # fifteen dispatcher ticks
    # Then nothing was sent and the cart stays paid
    assert fake_provider.requests() == []
    assert status_of(runtime, CART_ID) == "ordered"
