"""A worker that dies mid-step neither loses nor duplicates the step (architecture §4, §5).

``cartflow worker`` runs as a child process; the dispatcher runs in this process. The
fake provider holds the first push request open; once it has arrived the worker is
SIGKILLed — the request has left, the provider may have acted on it. A second worker
takes over when the timer's lease runs out: the push must be marked ``unknown`` (to be
reconciled) and never sent again, and the journey must go on to SMS and email.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from cartflow.engine.store.models import Decision, Delivery, Journey
from cartflow.workers.runtime import Runtime

from .conftest import ago, auth, cart_event, wait_until, worker_process, write_config
from .fake_provider import FakeProvider, Reply

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

#: Seconds a claimed timer is held (and a ``sending`` delivery is given) before takeover.
LEASE = 3


def deliveries(runtime: Runtime) -> dict[str, Delivery]:
    with runtime.db.sessions() as session:
        return {d.step_id: d for d in session.scalars(select(Delivery))}


def test_a_worker_killed_mid_send_neither_loses_nor_repeats_the_step(
    make_runtime: Callable[..., Runtime],
    fake_provider: FakeProvider,
    pg_url: str,
    redis_url: str,
    tmp_path: Path,
    recipient_zone: str,
) -> None:
    # Given a provider that hangs on the first push (longer than the test: the kill decides)
    fake_provider.script("push", Reply.hang(120))
    # (and an HTTP timeout far longer than the kill takes, so the worker cannot give up
    # on its own and mark the push ``unknown`` itself)
    config = write_config(tmp_path / "crash-config", fake_provider.url, timeout=8)
    runtime = make_runtime(config_path=config, timer_lease=LEASE)
    env = {
        "CARTFLOW_DATABASE_URL": pg_url,
        "CARTFLOW_REDIS_URL": redis_url,
        "CARTFLOW_CONFIG": str(config),
        "CARTFLOW_TIMER_LEASE": str(LEASE),
        "CARTFLOW_DISPATCH_INTERVAL": "0.2",
        "CARTFLOW_WORKER_THREADS": "2",
        "CARTFLOW_LOG_FORMAT": "json",
        "CARTFLOW_RELOAD_INTERVAL": "60",
    }
    log = tmp_path / "workers.log"

    with worker_process(env, log) as first:
        # and a cart abandoned 25 hours ago: idle timer and every step already due
        port = runtime.start_api("127.0.0.1", 0)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=auth(), timeout=30
        ) as client:
            event = cart_event("cart_crash", at=ago(hours=25), zone=recipient_zone)
            assert client.post("/v1/events", json=event).status_code == 202
        runtime.start_dispatcher(interval=0.2, lease=LEASE)

        # When the push request has reached the provider, the worker dies
        fake_provider.wait_for(lambda r: any(x.channel == "push" for x in r))
        first.kill()
        assert first.wait(timeout=10) == -9
        push = deliveries(runtime)["push"]
        assert push.status == "sending", "the kill should land between 'sending' and the outcome"

    with worker_process(env, log) as second:
        # Then a second worker takes over and the journey goes on to SMS and email
        wait_until(
            lambda: (
                second.poll() is None
                and {d.step_id: d.status for d in deliveries(runtime).values()}
                == {"push": "unknown", "sms": "accepted", "email": "accepted"}
            ),
            message="push unknown, sms and email accepted",
            interval=0.2,
        )
        wait_until(
            lambda: _journey(runtime).status == "completed", message="the journey to complete"
        )
        assert second.poll() is None, log.read_text()[-3000:]

    # and the push went out exactly once, was never resent, and says why it is unknown
    assert [r.channel for r in fake_provider.requests()] == ["push", "sms", "email"]
    push = deliveries(runtime)["push"]
    assert push.attempts == 1
    assert push.error and "do not resend" in push.error
    journey = _journey(runtime)
    with runtime.db.sessions() as session:
        trail = [
            (d.decision, d.step_id)
            for d in session.scalars(
                select(Decision).where(Decision.journey_id == journey.id).order_by(Decision.id)
            )
        ]
    assert trail == [
        ("started", None),
        ("unknown", "push"),
        ("sent", "sms"),
        ("sent", "email"),
        ("completed", None),
    ]


def _journey(runtime: Runtime) -> Journey:
    with runtime.db.sessions() as session:
        journey: Journey | None = session.scalar(select(Journey))
    assert journey is not None
    return journey
