"""One cart's path (architecture §3) through the production wiring: ``POST /v1/events`` →
Dramatiq on Redis → real worker threads → PostgreSQL → the dispatcher → webhook providers →
a fake provider server.

Events are dated in the past, so every timer is already due and only the dispatcher's
ticks and the workers stand between the POST and the sends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cartflow.engine.store.models import Cart, Decision, Delivery, Journey, RawEvent, Timer
from cartflow.workers.runtime import Runtime

from .conftest import POLL_TIMEOUT, ago, auth, cart_event, order_event, wait_until
from .fake_provider import FakeProvider, Received

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def runtime(make_runtime: Callable[..., Runtime]) -> Runtime:
    """API + 4 worker threads; the dispatcher is started by each test when it wants it."""
    runtime = make_runtime()
    runtime.start_worker(threads=4)
    return runtime


@pytest.fixture
def client(runtime: Runtime) -> Iterator[httpx.Client]:
    port = runtime.start_api("127.0.0.1", 0)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth(), timeout=30) as client:
        yield client


def post(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/events", json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def for_cart(cart_id: str) -> Callable[[list[Received]], list[Received]]:
    return lambda received: [r for r in received if r.cart_id == cart_id]


def rows(runtime: Runtime, model: Any, *where: Any, order_by: Any = None) -> list[Any]:
    with runtime.db.sessions() as session:
        query = select(model).where(*where)
        if order_by is not None:
            query = query.order_by(order_by)
        return list(session.scalars(query))


def count(runtime: Runtime, model: Any, *where: Any) -> int:
    with runtime.db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def all_applied(runtime: Runtime, *event_ids: str) -> bool:
    with runtime.db.sessions() as session:
        applied = session.scalars(
            select(RawEvent.id).where(RawEvent.id.in_(event_ids), RawEvent.applied_at.is_not(None))
        ).all()
    return len(applied) == len(event_ids)


def test_an_abandoned_cart_gets_push_then_sms_then_email_once_each(
    runtime: Runtime, client: httpx.Client, fake_provider: FakeProvider, recipient_zone: str
) -> None:
    # Given a cart last touched 25 hours ago, with a contact and consent on every channel
    event = cart_event("cart_e2e", at=ago(hours=25), zone=recipient_zone)
    # When the shop posts it and the dispatcher runs
    assert post(client, event) == {"accepted": 1, "duplicates": 0}
    runtime.start_dispatcher(interval=0.2, lease=10)
    # Then the provider receives push, SMS and email for that cart, in that order
    received = fake_provider.wait_for(lambda r: len(for_cart("cart_e2e")(r)) >= 3)
    wait_until(
        lambda: count(runtime, Journey, Journey.status == "completed") == 1,
        message="the journey to complete",
    )
    time.sleep(1.0)  # five more dispatcher ticks: nothing else may go out
    received = for_cart("cart_e2e")(fake_provider.requests())
    assert [r.channel for r in received] == ["push", "sms", "email"]
    assert len(fake_provider.requests()) == 3

    # and each delivery row is accepted, under the provider's message id
    [journey] = rows(runtime, Journey, Journey.cart_id == "cart_e2e")
    deliveries = rows(
        runtime, Delivery, Delivery.journey_id == journey.id, order_by=Delivery.created_at
    )
    assert [(d.step_id, d.channel, d.status) for d in deliveries] == [
        ("push", "push", "accepted"),
        ("sms", "sms", "accepted"),
        ("email", "email", "accepted"),
    ]
    for delivery, request in zip(deliveries, received, strict=True):
        assert request.body["id"] == delivery.id
        assert request.body["idempotency_key"] == f"{journey.id}:{delivery.step_id}"
        assert request.body["metadata"]["cartflow_delivery_id"] == delivery.id
        assert delivery.provider == "webhook"
        assert delivery.provider_message_id and delivery.provider_message_id.startswith("fake-")
        assert delivery.attempts == 1
    push, sms, email = (r.body for r in received)
    assert push["to"] == "push-token-cart_e2e"
    assert sms["to"] == "+79991234567"
    assert email["to"] == "cart_e2e@example.com"
    assert push["parts"]["url"] == "https://shop.example/cart/cart_e2e"
    # the SMS and the email carry their own discount codes
    assert sms["metadata"]["token"] and sms["metadata"]["token"] in sms["parts"]["text"]
    assert email["metadata"]["token"] and email["metadata"]["token"] != sms["metadata"]["token"]

    # and the decision trail answers "what happened to this cart?"
    trail = rows(runtime, Decision, Decision.journey_id == journey.id, order_by=Decision.id)
    assert [(d.decision, d.step_id) for d in trail] == [
        ("started", None),
        ("sent", "push"),
        ("sent", "sms"),
        ("sent", "email"),
        ("completed", None),
    ]
    assert [d.delivery_id for d in trail if d.decision == "sent"] == [d.id for d in deliveries]

    # and nothing is left waiting
    assert journey.status == "completed"
    assert rows(runtime, Cart, Cart.id == "cart_e2e")[0].status == "abandoned"
    assert count(runtime, Timer) == 0


def test_an_order_right_after_the_cart_prevents_every_send(
    runtime: Runtime, client: httpx.Client, fake_provider: FakeProvider, recipient_zone: str
) -> None:
    # Given a cart abandoned 25 hours ago and, in the next request, its order
    cart = cart_event("cart_paid", at=ago(hours=25), zone=recipient_zone)
    order = order_event("cart_paid", at=ago(hours=25, minutes=-5))
    post(client, cart)
    post(client, order)
    # (the dispatcher starts once both are applied: two events in two requests may be
    # applied by two worker threads in either order, and both orders must end the same)
    wait_until(lambda: all_applied(runtime, cart["id"], order["id"]), message="both events applied")
    # When the dispatcher runs for a while
    dispatcher = runtime.start_dispatcher(interval=0.2, lease=10)
    time.sleep(2.0)
    # Then nothing was sent, no journey started, and nothing waits to fire
    assert fake_provider.requests() == []
    assert count(runtime, Journey) == 0
    assert count(runtime, Delivery) == 0
    assert count(runtime, Timer) == 0
    assert dispatcher.dispatched == 0
    [paid] = rows(runtime, Cart, Cart.id == "cart_paid")
    assert paid.status == "ordered"  # (order_id: see the next test)


def test_an_order_that_overtakes_its_cart_is_recorded_on_the_cart(
    runtime: Runtime, client: httpx.Client, fake_provider: FakeProvider, recipient_zone: str
) -> None:
    # Given the order arrives (and is applied) before the cart snapshot it paid for
    order = order_event("cart_overtaken", at=ago(hours=25, minutes=-5))
    post(client, order)
    wait_until(lambda: all_applied(runtime, order["id"]), message="the order applied")
    cart = cart_event("cart_overtaken", at=ago(hours=25), zone=recipient_zone)
    post(client, cart)
    wait_until(lambda: all_applied(runtime, cart["id"]), message="the cart applied")
    # When the dispatcher runs
    runtime.start_dispatcher(interval=0.2, lease=10)
    time.sleep(1.0)
    # Then nothing is sent and the cart records which order paid it, and when
    assert fake_provider.requests() == []
    assert count(runtime, Journey) == 0
    [paid] = rows(runtime, Cart, Cart.id == "cart_overtaken")
    assert paid.status == "ordered"
    assert (paid.order_id, paid.ordered_at is not None) == ("order_cart_overtaken", True)


def test_an_order_after_the_first_reminder_stops_the_rest(
    runtime: Runtime, client: httpx.Client, fake_provider: FakeProvider, recipient_zone: str
) -> None:
    # Given a cart left 2 hours ago: the push is due now, the SMS in an hour
    post(client, cart_event("cart_late", at=ago(hours=2), zone=recipient_zone))
    runtime.start_dispatcher(interval=0.2, lease=10)
    fake_provider.wait_for(lambda r: len(r) >= 1)
    wait_until(
        lambda: count(runtime, Delivery, Delivery.status == "accepted") == 1,
        message="the push delivery to be accepted",
    )
    [journey] = rows(runtime, Journey)
    assert (journey.status, journey.step_index) == ("active", 1)
    assert count(runtime, Timer, Timer.ref == journey.id) == 1  # the SMS waits
    # When the order arrives
    post(client, order_event("cart_late", at=ago(minutes=1)))
    # Then the journey ends at once and its pending timer is gone
    wait_until(
        lambda: rows(runtime, Journey)[0].status != "active",
        timeout=POLL_TIMEOUT,
        message="the journey to exit",
    )
    [journey] = rows(runtime, Journey)
    assert (journey.status, journey.exit_reason) == ("exited", "order.completed")
    assert count(runtime, Timer) == 0
    trail = rows(runtime, Decision, Decision.journey_id == journey.id, order_by=Decision.id)
    assert [d.decision for d in trail] == ["started", "sent", "exited"]
    assert [r.channel for r in fake_provider.requests()] == ["push"]
