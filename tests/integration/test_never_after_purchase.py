"""A 2xx is final: once the API has answered 202 for an order, no reminder for that cart
leaves — even when nothing applies the order for a while (a lost message, a stopped
event worker), and even with a backlog of sends queued ahead of it.

Real API over HTTP, real worker threads and dispatcher; PostgreSQL + Redis, and the
embedded SQLite + in-process broker.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from dramatiq import Worker
from sqlalchemy import func, select

from cartflow.engine.store.models import Decision, Delivery, EventStop, Journey, RawEvent
from cartflow.workers.actors import EVENTS_QUEUE
from cartflow.workers.runtime import Runtime

from .conftest import (
    ago,
    auth,
    cart_event,
    make_settings,
    order_event,
    wait_until,
    worker_process,
    write_config,
)
from .fake_provider import FakeProvider, Reply

#: The push goes at once; the SMS and the email follow it a few seconds apart.
QUICK_SCENARIO = """\
scenario: abandoned_cart
priority: 10
trigger: {on: cart.abandoned, idle: 30m}
exit_on: [order.completed, cart.emptied, unsubscribed]
expires: 7d
steps:
  - {id: push, after: 30m, channel: push, template: abandoned_cart/push}
  - {id: sms, after_previous: 6s, channel: sms, template: abandoned_cart/sms,
     discount: {percent: 5}}
  - {id: email, after_previous: 6s, channel: email, template: abandoned_cart/email,
     discount: {percent: 10}}
"""


def quick_config(directory: Path, provider_url: str, **options: Any) -> Path:
    path = write_config(directory, provider_url, **options)
    (directory / "scenarios" / "abandoned_cart.yaml").write_text(QUICK_SCENARIO, encoding="utf-8")
    return path


@pytest.fixture(params=["postgres", "sqlite"])
def runtime(
    request: pytest.FixtureRequest, tmp_path: Path, fake_provider: FakeProvider
) -> Iterator[Runtime]:
    """The production wiring on PostgreSQL + Redis, or the embedded one on SQLite."""
    config = quick_config(tmp_path / "config", fake_provider.url)
    if request.param == "postgres":
        pg_url = request.getfixturevalue("pg_url")
        redis_url = request.getfixturevalue("redis_url")
        runtime = Runtime(make_settings(pg_url, redis_url, config), embedded=False)
    else:
        url = f"sqlite:///{tmp_path / 'embedded.db'}"
        runtime = Runtime(make_settings(url, "redis://unused", config), embedded=True)
    yield runtime
    runtime.stop()


def client_for(runtime: Runtime) -> httpx.Client:
    port = runtime.start_api("127.0.0.1", 0)
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth(), timeout=30)


def post(client: httpx.Client, body: dict[str, Any]) -> None:
    response = client.post("/v1/events", json=body)
    assert response.status_code == 202, response.text


def applied(runtime: Runtime, event_id: str) -> bool:
    with runtime.db.sessions() as session:
        row = session.get(RawEvent, event_id)
        return row is not None and row.applied_at is not None


def journey_of(runtime: Runtime, cart_id: str) -> Journey | None:
    with runtime.db.sessions() as session:
        return session.scalar(select(Journey).where(Journey.cart_id == cart_id))


def test_nothing_leaves_after_the_orders_202_while_nobody_applies_it(
    runtime: Runtime, fake_provider: FakeProvider, recipient_zone: str
) -> None:
    runtime.start_worker(threads=2, event_threads=1)
    runtime.start_dispatcher(interval=0.2, redrive_after=timedelta(hours=1))
    with client_for(runtime) as client:
        # Given a cart left an hour ago: the push goes at once, the SMS 6 s after it
        post(client, cart_event("cart_paid", at=ago(hours=1), zone=recipient_zone))
        fake_provider.wait_for(lambda r: [x.channel for x in r] == ["push"])
        # and nothing applies events any more (the apply message is stuck or lost)
        runtime.event_worker.stop(timeout=10_000)
        # When the shop reports the order and the API answers 202
        order = order_event("cart_paid", at=ago(seconds=1))
        post(client, order)
        accepted_at = time.monotonic()
        # Then the SMS and email times pass and nothing goes out
        time.sleep(14)
        assert [r.channel for r in fake_provider.requests()] == ["push"]
        assert all(r.at < accepted_at for r in fake_provider.requests())
        with runtime.db.sessions() as session:
            reasons = session.scalars(
                select(Decision.reason).where(Decision.decision == "deferred")
            ).all()
            assert session.get(RawEvent, order["id"]).applied_at is None  # type: ignore[union-attr]
        assert reasons and all("order.completed accepted at" in r for r in reasons)

        # And when events are applied again, the journey ends for the order
        events = Worker(runtime.broker, queues={EVENTS_QUEUE}, worker_threads=1, worker_timeout=100)
        events.start()
        try:
            wait_until(
                lambda: (
                    (j := journey_of(runtime, "cart_paid")) is not None and j.status == "exited"
                ),
                message="the journey to exit",
            )
        finally:
            events.stop(timeout=10_000)
    journey = journey_of(runtime, "cart_paid")
    assert journey is not None and journey.exit_reason == "order.completed"
    assert [r.channel for r in fake_provider.requests()] == ["push"]
    with runtime.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(EventStop)) == 0


@pytest.mark.postgres
@pytest.mark.redis
def test_an_order_is_applied_while_a_backlog_of_sends_still_waits(
    pg_url: str,
    redis_url: str,
    redis: Any,
    tmp_path: Path,
    fake_provider: FakeProvider,
    recipient_zone: str,
) -> None:
    # Given a slow provider and 120 abandoned carts whose pushes are all due
    config = quick_config(tmp_path / "config", fake_provider.url)
    fake_provider.script(None, *[Reply.hang(0.25)] * 400)
    runtime = Runtime(make_settings(pg_url, redis_url, config), embedded=False)
    try:
        with client_for(runtime) as client:
            batch = [
                cart_event(f"cart_{n}", at=ago(hours=1), zone=recipient_zone) for n in range(120)
            ]
            post(client, {"events": batch})
            runtime.start_worker(threads=2, event_threads=1)
            runtime.start_dispatcher(interval=0.2)
            fake_provider.wait_for(lambda r: len(r) >= 4)
            # When one of them orders
            order = order_event("cart_119", at=ago(seconds=1))
            post(client, order)
            accepted_at = time.monotonic()
            # Then the order is applied while sends are still queued behind the slow provider
            wait_until(lambda: applied(runtime, order["id"]), message="the order to be applied")
            applied_after = time.monotonic() - accepted_at
            # (the timers travel 20 to a message and the worker prefetches messages, so the
            # backlog is the sends not made yet, not what Redis still lists)
            made = len(fake_provider.requests())
            assert made < 100, f"{made} of 120 sent before the order ({applied_after:.1f}s)"
            # and that cart gets nothing after the 202
            time.sleep(2)
            late = [
                r
                for r in fake_provider.requests()
                if r.cart_id == "cart_119" and r.at > accepted_at
            ]
            assert late == []
    finally:
        runtime.stop()


@pytest.mark.postgres
@pytest.mark.redis
def test_a_send_cut_short_by_a_dead_worker_never_stays_sending_after_an_order(
    pg_url: str,
    redis_url: str,
    tmp_path: Path,
    fake_provider: FakeProvider,
    recipient_zone: str,
) -> None:
    # Given a provider that hangs on the push, and a worker process that will die on it
    lease = 3
    fake_provider.script("push", Reply.hang(120))
    config = quick_config(tmp_path / "config", fake_provider.url, timeout=8)
    runtime = Runtime(make_settings(pg_url, redis_url, config, timer_lease=lease), embedded=False)
    env = {
        "CARTFLOW_DATABASE_URL": pg_url,
        "CARTFLOW_REDIS_URL": redis_url,
        "CARTFLOW_CONFIG": str(config),
        "CARTFLOW_TIMER_LEASE": str(lease),
        "CARTFLOW_WORKER_THREADS": "2",
        "CARTFLOW_RELOAD_INTERVAL": "60",
    }
    try:
        with worker_process(env, tmp_path / "worker.log") as worker, client_for(runtime) as client:
            post(client, cart_event("cart_dead", at=ago(hours=1), zone=recipient_zone))
            runtime.start_dispatcher(interval=0.2, lease=lease)
            fake_provider.wait_for(lambda r: any(x.channel == "push" for x in r))
            # When the worker is killed mid-send and the shopper then orders
            worker.kill()
            assert worker.wait(timeout=10) == -9
            post(client, order_event("cart_dead", at=ago(seconds=1)))
            runtime.engine.apply_events(runtime.engine.unapplied_event_ids(timedelta(0)))
            journey = journey_of(runtime, "cart_dead")
            assert journey is not None and journey.status == "exited"
            # Then the scheduler settles the push as unknown once the grace has passed
            wait_until(
                lambda: statuses(runtime) == {"push": "unknown"},
                message="the push to settle as unknown",
            )
        # and `cartflow status` counts nothing stuck
        status = subprocess.run(
            [str(Path(sys.executable).with_name("cartflow")), "status"],
            env={**env, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert "sending stuck   0" in status, status
        with runtime.db.sessions() as session:
            reasons = session.scalars(
                select(Decision.reason).where(Decision.decision == "unknown")
            ).all()
        assert any("do not resend" in r for r in reasons)
        assert [r.channel for r in fake_provider.requests()] == ["push"]
    finally:
        runtime.stop()


def statuses(runtime: Runtime) -> dict[str, str]:
    with runtime.db.sessions() as session:
        return {d.step_id: d.status for d in session.scalars(select(Delivery))}


def test_an_event_id_reused_for_another_event_is_409(runtime: Runtime, recipient_zone: str) -> None:
    with client_for(runtime) as client:
        # Given a stored cart.updated with id X
        cart = cart_event("cart_409", at=ago(hours=1), zone=recipient_zone, event_id="evt_X")
        post(client, cart)
        # When an order.completed arrives under the same id
        order = order_event("cart_409", at=ago(minutes=1), event_id="evt_X")
        response = client.post("/v1/events", json=order)
        # Then it is a conflict that names the field, and nothing was stored
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["errors"][0]["loc"] == "events.0.id"
        assert "different body" in body["errors"][0]["msg"]
        with runtime.db.sessions() as session:
            stored = session.get(RawEvent, "evt_X")
            assert stored is not None and stored.type == "cart.updated"
            assert session.scalar(select(func.count()).select_from(EventStop)) == 0
        # and the same event again is a duplicate, as before
        again = client.post("/v1/events", json=cart)
        assert again.status_code == 202 and again.json() == {"accepted": 0, "duplicates": 1}
