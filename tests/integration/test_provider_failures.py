"""What a provider answers decides what happens next (architecture §5): refused before acceptance
(429, 5xx) may be retried — the same delivery, the same id; a clear refusal (4xx) is
final; a timeout after the request left is ``unknown`` and never resent.

Real HTTP from the webhook provider to the fake server; real workers, Redis, PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cartflow.engine.store.models import Contact, Decision, Delivery, Journey, RawEvent
from cartflow.workers.actors import EVENTS_QUEUE
from cartflow.workers.dispatcher import Dispatcher
from cartflow.workers.runtime import Runtime

from .conftest import ago, auth, cart_event, iso, wait_until, write_config
from .fake_provider import FakeProvider, Reply

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def start(
    make_runtime: Callable[..., Runtime], fake_provider: FakeProvider, tmp_path: Path
) -> Iterator[Callable[..., tuple[Runtime, httpx.Client]]]:
    """``start(timeout=2)`` → a runtime with workers, dispatcher and API, and a client."""
    clients: list[httpx.Client] = []

    def run(timeout: float = 2) -> tuple[Runtime, httpx.Client]:
        config = write_config(tmp_path / "config-failures", fake_provider.url, timeout=timeout)
        runtime = make_runtime(config_path=config)
        runtime.start_worker(threads=4)
        runtime.start_dispatcher(interval=0.2, lease=10)
        port = runtime.start_api("127.0.0.1", 0)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth(), timeout=30)
        clients.append(client)
        return runtime, client

    yield run
    for client in clients:
        client.close()


def post(client: httpx.Client, body: dict[str, Any]) -> None:
    response = client.post("/v1/events", json=body)
    assert response.status_code == 202, response.text


def statuses(runtime: Runtime) -> dict[str, str]:
    with runtime.db.sessions() as session:
        return {d.step_id: d.status for d in session.scalars(select(Delivery))}


def delivery(runtime: Runtime, step: str) -> Delivery:
    with runtime.db.sessions() as session:
        row: Delivery | None = session.scalar(select(Delivery).where(Delivery.step_id == step))
    assert row is not None
    return row


def trail(runtime: Runtime) -> list[tuple[str, str | None]]:
    with runtime.db.sessions() as session:
        return [
            (d.decision, d.step_id)
            for d in session.scalars(
                select(Decision).where(Decision.journey_id.is_not(None)).order_by(Decision.id)
            )
        ]


def journey_status(runtime: Runtime) -> str | None:
    with runtime.db.sessions() as session:
        status: str | None = session.scalar(select(Journey.status))
    return status


def test_refusals_before_acceptance_are_retried_as_the_same_delivery(
    start: Callable[..., tuple[Runtime, httpx.Client]],
    fake_provider: FakeProvider,
    recipient_zone: str,
) -> None:
    # Given a provider that answers the push 500, then 429, then accepts it
    fake_provider.script(
        "push",
        Reply(500, {"error": "boom"}, {"Retry-After": "1"}),
        Reply.throttle(retry_after=1),
    )
    runtime, client = start()
    # When a cart is abandoned
    post(client, cart_event("cart_retry", at=ago(hours=25), zone=recipient_zone))
    # Then the push is retried until accepted, and the journey goes on
    wait_until(
        lambda: statuses(runtime) == {"push": "accepted", "sms": "accepted", "email": "accepted"},
        message="every step accepted",
    )
    pushes = fake_provider.requests("push")
    assert len(pushes) == 3
    push = delivery(runtime, "push")
    # always the same delivery, under the same id and idempotency key
    assert {r.body["id"] for r in pushes} == {push.id}
    assert len({r.body["idempotency_key"] for r in pushes}) == 1
    assert push.attempts == 3
    assert pushes[1].at - pushes[0].at >= 0.9, "Retry-After: 1 was not honoured"
    assert [r.channel for r in fake_provider.requests()] == ["push"] * 3 + ["sms", "email"]
    assert trail(runtime)[:4] == [
        ("started", None),
        ("retry", "push"),
        ("retry", "push"),
        ("sent", "push"),
    ]


def test_a_provider_that_keeps_refusing_gives_up_after_three_attempts(
    start: Callable[..., tuple[Runtime, httpx.Client]],
    fake_provider: FakeProvider,
    recipient_zone: str,
) -> None:
    fake_provider.script("push", *[Reply.throttle(retry_after=1)] * 5)
    runtime, client = start()
    post(client, cart_event("cart_give_up", at=ago(hours=25), zone=recipient_zone))
    wait_until(
        lambda: statuses(runtime) == {"push": "failed", "sms": "accepted", "email": "accepted"},
        message="push failed, the rest accepted",
    )
    assert len(fake_provider.requests("push")) == 3
    assert delivery(runtime, "push").error == "HTTP 429"


def test_a_clear_refusal_is_final_and_the_journey_goes_on(
    start: Callable[..., tuple[Runtime, httpx.Client]],
    fake_provider: FakeProvider,
    recipient_zone: str,
) -> None:
    # Given a provider that refuses the push (400) and says the phone is gone (410)
    fake_provider.script("push", Reply.status(400))
    fake_provider.script("sms", Reply.status(410))
    runtime, client = start()
    # When
    post(client, cart_event("cart_refused", at=ago(hours=25), zone=recipient_zone))
    # Then neither is retried; the phone is marked invalid; the email still goes
    wait_until(
        lambda: statuses(runtime) == {"push": "failed", "sms": "failed", "email": "accepted"},
        message="push and sms failed, email accepted",
    )
    wait_until(lambda: journey_status(runtime) == "completed", message="the journey to complete")
    assert [r.channel for r in fake_provider.requests()] == ["push", "sms", "email"]
    with runtime.db.sessions() as session:
        phone = session.scalar(select(Contact).where(Contact.channel == "sms"))
        assert phone is not None
        assert (phone.valid, phone.invalid_reason) == (False, "HTTP 410")
    assert [d for d in trail(runtime) if d[0] == "failed"] == [
        ("failed", "push"),
        ("failed", "sms"),
    ]


def test_a_timeout_after_the_request_left_is_unknown_and_never_resent(
    start: Callable[..., tuple[Runtime, httpx.Client]],
    fake_provider: FakeProvider,
    recipient_zone: str,
) -> None:
    # Given a provider that takes longer than the client's 1 s timeout to answer the push
    fake_provider.script("push", Reply.hang(5))
    runtime, client = start(timeout=1)
    # When
    post(client, cart_event("cart_timeout", at=ago(hours=25), zone=recipient_zone))
    # Then the push is unknown — it may have been delivered — and is not sent again
    wait_until(
        lambda: statuses(runtime) == {"push": "unknown", "sms": "accepted", "email": "accepted"},
        message="push unknown, the rest accepted",
    )
    assert len(fake_provider.requests("push")) == 1
    push = delivery(runtime, "push")
    assert push.attempts == 1
    assert push.error and "after the request left" in push.error


def test_consent_withdrawn_while_a_retry_waits_stops_the_retry(
    start: Callable[..., tuple[Runtime, httpx.Client]],
    fake_provider: FakeProvider,
    recipient_zone: str,
) -> None:
    """Regression: retries used to re-check only order/emptied (fixed in bdb6019)."""
    # Given an SMS the provider throttled, to be retried in 4 s
    fake_provider.script("sms", Reply.throttle(retry_after=4))
    runtime, client = start()
    post(client, cart_event("cart_consent", at=ago(hours=25), zone=recipient_zone))
    fake_provider.wait_for(lambda r: any(x.channel == "sms" for x in r))
    wait_until(lambda: ("retry", "sms") in trail(runtime), message="the SMS retry to be scheduled")
    # When the shopper withdraws SMS consent before the retry
    withdrawal = {
        "id": "evt_no_sms",
        "type": "consent.updated",
        "at": iso(ago(seconds=1)),
        "customer_id": "cust_cart_consent",
        "consent": {"sms": False},
    }
    post(client, withdrawal)
    wait_until(
        lambda: _applied(runtime, "evt_no_sms"), message="the consent withdrawal to be applied"
    )
    # Then no second SMS goes out: the retry re-runs every guard, finds no consent,
    # cancels the pending delivery and moves on to the email
    wait_until(
        lambda: statuses(runtime) == {"push": "accepted", "sms": "cancelled", "email": "accepted"},
        message="sms cancelled, email accepted",
    )
    assert len(fake_provider.requests("sms")) == 1
    assert ("skipped", "sms") in trail(runtime)
    assert [r.channel for r in fake_provider.requests()] == ["push", "sms", "email"]


def test_an_event_whose_queue_message_was_lost_is_redriven(
    start: Callable[..., tuple[Runtime, httpx.Client]],
    fake_provider: FakeProvider,
    recipient_zone: str,
) -> None:
    # Given an event stored (a 202 was answered) whose apply message never reached Redis
    from cartflow.engine.events import parse_events

    runtime, _ = start()
    event = cart_event("cart_lost", at=ago(hours=25), zone=recipient_zone, event_id="evt_lost")
    assert runtime.engine.ingest(parse_events(event)) == ["evt_lost"]
    # When a dispatcher that re-drives after half a second runs
    redriver = Dispatcher(
        runtime.engine, runtime.actors, interval=0.2, redrive_after=timedelta(seconds=0.5)
    )
    redriver.start()
    try:
        # Then the event is applied (once) and the cart gets its reminders
        wait_until(
            lambda: (
                statuses(runtime) == {"push": "accepted", "sms": "accepted", "email": "accepted"}
            ),
            message="every step accepted",
        )
    finally:
        redriver.stop()
    assert _applied(runtime, "evt_lost")
    assert [r.channel for r in fake_provider.requests()] == ["push", "sms", "email"]


def _applied(runtime: Runtime, event_id: str) -> bool:
    with runtime.db.sessions() as session:
        raw = session.get(RawEvent, event_id)
        return raw is not None and raw.applied_at is not None


def test_events_still_queued_are_not_redriven_and_lost_ones_once(
    make_runtime: Callable[..., Runtime],
    fake_provider: FakeProvider,
    tmp_path: Path,
    recipient_zone: str,
) -> None:
    # Given five events accepted by the API while no worker applies them
    config = write_config(tmp_path / "config-redrive", fake_provider.url)
    runtime = make_runtime(config_path=config)
    port = runtime.start_api("127.0.0.1", 0)
    ids = [f"evt_q{n}" for n in range(5)]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth(), timeout=30) as client:
        events = [
            cart_event(f"cart_q{n}", at=ago(hours=1), zone=recipient_zone, event_id=ids[n])
            for n in range(5)
        ]
        post(client, {"events": events})
    redriver = Dispatcher(runtime.engine, runtime.actors, redrive_after=timedelta(0))
    assert runtime.actors.backlog(EVENTS_QUEUE) == 1  # the API's one apply message

    # When the dispatcher looks while their message still waits in the queue
    # Then nothing is re-sent: they are slow, not lost
    assert redriver.redrive() == 0

    # When the message is lost (the queue flushed), every event is re-sent, once
    runtime.broker.flush(EVENTS_QUEUE)
    assert runtime.actors.backlog(EVENTS_QUEUE) == 0
    assert redriver.redrive() == 5
    assert redriver.redrive() == 0  # the re-sent message is queued now
    assert redriver.redriven == 5

    # And a worker applies them from the one re-sent message
    runtime.start_worker(threads=1, event_threads=1)
    wait_until(lambda: all(_applied(runtime, i) for i in ids), message="the events applied")
    assert runtime.actors.backlog(EVENTS_QUEUE) == 0
