"""The same event twice is applied once (architecture §3.1: idempotent on the event ``id``).

Real API, PostgreSQL, Redis and worker threads; the dispatcher runs the journey through,
so a doubly-applied event would show as a doubled cart, journey or delivery.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from cartflow.engine.store.models import Cart, Delivery, Journey, Profile, RawEvent
from cartflow.workers.runtime import Runtime

from .conftest import ago, auth, cart_event, wait_until
from .fake_provider import FakeProvider

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def runtime(make_runtime: Callable[..., Runtime]) -> Runtime:
    runtime = make_runtime()
    runtime.start_worker(threads=4)
    runtime.start_dispatcher(interval=0.2, lease=10)
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


def count(runtime: Runtime, model: Any, *where: Any) -> int:
    with runtime.db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def run_to_the_end(runtime: Runtime, fake: FakeProvider, sends: int) -> None:
    """Wait for ``sends`` accepted deliveries, then give duplicates time to show up."""
    wait_until(
        lambda: count(runtime, Delivery, Delivery.status == "accepted") >= sends,
        message=f"{sends} accepted deliveries",
    )
    time.sleep(1.0)  # five more dispatcher ticks


def assert_applied_once(runtime: Runtime, fake: FakeProvider, *, carts: int = 1) -> None:
    assert count(runtime, Cart) == carts
    assert count(runtime, Profile) == carts
    assert count(runtime, Journey) == carts
    assert count(runtime, Delivery) == 3 * carts
    assert len(fake.requests()) == 3 * carts
    for channel in ("push", "sms", "email"):
        assert len(fake.requests(channel)) == carts


def test_the_same_event_posted_twice_is_applied_once(
    runtime: Runtime, client: httpx.Client, fake_provider: FakeProvider, recipient_zone: str
) -> None:
    # Given a cart event
    event = cart_event("cart_dup", at=ago(hours=25), zone=recipient_zone, event_id="evt_dup")
    # When the shop posts it twice (a retry after a lost 202)
    first = post(client, event)
    second = post(client, event)
    # Then the second is acknowledged as a duplicate
    assert first == {"accepted": 1, "duplicates": 0}
    assert second == {"accepted": 0, "duplicates": 1}
    run_to_the_end(runtime, fake_provider, sends=3)
    # and it is stored and applied once
    assert count(runtime, RawEvent) == 1
    assert_applied_once(runtime, fake_provider)
    # and a third copy, after the journey ran, changes nothing either
    assert post(client, event) == {"accepted": 0, "duplicates": 1}
    time.sleep(1.0)
    assert count(runtime, RawEvent) == 1
    assert_applied_once(runtime, fake_provider)


def test_a_batch_with_the_same_id_twice_is_applied_once(
    runtime: Runtime, client: httpx.Client, fake_provider: FakeProvider, recipient_zone: str
) -> None:
    # Given one event, and a batch that carries it twice
    event = cart_event("cart_batch", at=ago(hours=25), zone=recipient_zone, event_id="evt_batch")
    # When
    answer = post(client, {"events": [event, event]})
    # Then
    assert answer == {"accepted": 1, "duplicates": 1}
    run_to_the_end(runtime, fake_provider, sends=3)
    assert count(runtime, RawEvent) == 1
    assert_applied_once(runtime, fake_provider)
    # and a later batch mixing a stored id with a new one accepts only the new one
    other = cart_event(
        "cart_batch_2", at=ago(hours=25), zone=recipient_zone, event_id="evt_batch_2"
    )
    assert post(client, {"events": [event, other, other]}) == {"accepted": 1, "duplicates": 2}
    run_to_the_end(runtime, fake_provider, sends=6)
    assert count(runtime, RawEvent) == 2
    assert_applied_once(runtime, fake_provider, carts=2)


def test_the_same_event_posted_concurrently_is_accepted_once(
    runtime: Runtime, client: httpx.Client, fake_provider: FakeProvider, recipient_zone: str
) -> None:
    # Given one event
    event = cart_event("cart_race", at=ago(hours=25), zone=recipient_zone, event_id="evt_race")
    # When eight shop retries hit the API at the same moment
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: post(client, event), range(8)))
    # Then exactly one was accepted
    assert sum(a["accepted"] for a in answers) == 1
    assert sum(a["duplicates"] for a in answers) == 7
    run_to_the_end(runtime, fake_provider, sends=3)
    assert count(runtime, RawEvent) == 1
    assert_applied_once(runtime, fake_provider)
