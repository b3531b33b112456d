"""Rate limits and circuit breakers (providers/throttle.py): the breaker's arithmetic on
an in-process store, and what the engine does while a provider's breaker is open — steps
fall over or wait, they are not burned, and nothing is sent twice when it comes back."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from dramatiq.rate_limits.backends import StubBackend

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.events import Event
from cartflow.engine.sending import Message, SendResult
from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.providers.live import LiveRouter
from cartflow.providers.registry import ChannelRouter
from cartflow.providers.throttle import MemoryStore, Policy, Throttle

from ..factories import T0, ClockedRecorder, cart_updated, decisions, deliveries, write_config

MESSAGE = Message("d1", "k1", "sms", "+79991234567", {"text": "hi"}, "ru")
DOWN = SendResult.retryable("twilio", "HTTP 500")
OK = SendResult.accepted("twilio", "SM1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Callable[[], float], **policy: object) -> Throttle:
    values: dict[str, object] = {
        "provider": "twilio",
        "key": "sms:twilio",
        "rate": None,
        "failures": 3,
        "within": 60.0,
        "open_for": 30.0,
        **policy,
    }
    chosen = Policy(**values)  # type: ignore[arg-type]
    return Throttle(lambda channel: chosen, MemoryStore(clock), StubBackend(), max_wait=0.2)


def test_failures_within_the_window_open_the_breaker_for_its_time() -> None:
    clock = Clock()
    layer = throttle(clock)
    answers = iter([DOWN, DOWN, DOWN])
    calls: list[Message] = []

    def send(message: Message) -> SendResult:
        calls.append(message)
        return next(answers, OK)

    # three failures: open, for 30 s
    assert [layer.send(MESSAGE, send).status for _ in range(3)] == ["retryable"] * 3
    assert layer.paused_for("sms") == 30.0
    # while open, nothing reaches the provider
    held = layer.send(MESSAGE, send)
    assert (held.status, held.reason, held.retry_after) == (
        "retryable",
        "circuit open: twilio is failing",
        30.0,
    )
    assert len(calls) == 3
    # closed again after 30 s; a success clears the count
    clock.now += 30
    assert layer.paused_for("sms") is None
    assert layer.send(MESSAGE, send).status == "accepted"
    assert len(calls) == 4


def test_a_failed_probe_opens_it_again_at_once_and_old_failures_expire() -> None:
    clock = Clock()
    layer = throttle(clock)
    for _ in range(3):
        layer.send(MESSAGE, lambda m: DOWN)
    clock.now += 31  # closed; the count (60 s) still stands
    layer.send(MESSAGE, lambda m: DOWN)
    assert layer.paused_for("sms") == 30.0
    # failures further apart than the window never open it
    apart = Clock()
    quiet = throttle(apart)
    for _ in range(5):
        apart.now += 61
        quiet.send(MESSAGE, lambda m: DOWN)
    assert quiet.paused_for("sms") is None


def test_refusals_about_the_message_do_not_count_against_the_provider() -> None:
    layer = throttle(Clock())
    invalid = SendResult.permanent("twilio", "21211", invalid_contact=True)
    for _ in range(10):
        layer.send(MESSAGE, lambda m: invalid)
    assert layer.paused_for("sms") is None


def test_over_the_rate_limit_a_send_is_held_not_sent() -> None:
    # Given 3 sends a second, and no time to wait for room
    layer = throttle(Clock(), rate=(3, 1))
    layer.max_wait = 0.0
    sent: list[Message] = []

    def send(message: Message) -> SendResult:
        sent.append(message)
        return OK

    # When ten go at once (well within a second or two of wall time)
    results = [layer.send(MESSAGE, send) for _ in range(10)]

    # Then at most 3 per second reached the provider; the rest are held, to retry
    accepted = [r for r in results if r.status == "accepted"]
    held = [r for r in results if r.status == "retryable"]
    assert 3 <= len(accepted) <= 6 and len(sent) == len(accepted)
    assert held and all(r.reason == "rate limit 3/1s reached" for r in held)
    assert all(r.retry_after == 1.0 for r in held)


# -- the engine while a breaker is open ---------------------------------------------------
SMS_THEN_EMAIL = """\
scenario: t
trigger: {on: cart.abandoned, idle: 30m}
steps:
  - {id: remind, after: 30m, channel: sms, fallback: [email], window: "00:00-23:59",
     template: {sms: abandoned_cart/sms, email: abandoned_cart/email},
     discount: {percent: 5, ttl: 48h}}
"""


def shopper(n: int) -> Event:
    return cart_updated(T0, cart_id=f"cart_{n}", customer_id=f"cust_{n}", anonymous_id=f"anon_{n}")


def test_an_outage_opens_the_breaker_steps_fall_over_and_nothing_is_sent_twice(
    tmp_path: Path, db: Database, clock: SimulatedClock
) -> None:
    # Given an SMS provider that fails three times, then works
    recorder = ClockedRecorder(clock)
    failures = iter([DOWN, DOWN, DOWN])
    recorder.handler = lambda m: (
        next(failures, SendResult.accepted("recording", m.delivery_id))
        if m.channel == "sms"
        else SendResult.accepted("recording", m.delivery_id)
    )
    layer = Throttle(
        lambda channel: Policy("recording", f"{channel}:recording", None, 3, 60.0, 300.0),
        MemoryStore(lambda: clock.now().timestamp()),
        StubBackend(),
    )
    router = ChannelRouter({"push": recorder, "sms": recorder, "email": recorder})
    sender = LiveRouter(lambda providers: router, {}, layers=[layer])
    config = write_config(tmp_path / "config", SMS_THEN_EMAIL)
    sim = Simulation(Engine(db, clock, ConfigHolder(config), sender), clock)

    # When five shoppers' reminders come due at once
    sim.feed([shopper(n) for n in range(5)])
    sim.run_until(T0 + timedelta(hours=3))

    # Then three SMS failed (breaker opened), the other two went by email at once
    sms = [c for c in recorder.calls if c[0] == "sms"]
    assert [s for _, _, s in sms[:3]] == ["retryable"] * 3
    fallbacks = [d for d in decisions(db, "fallback") if "is failing" in d.reason]
    assert len(fallbacks) == 2 and fallbacks[0].channel == "email"
    # ... the three refused were retried on SMS once the breaker closed, and got through
    by_cart: dict[str, list[tuple[str, str]]] = {}
    for d in deliveries(db):
        by_cart.setdefault(d.cart_id, []).append((d.channel, d.status))
    assert sorted(len(v) for v in by_cart.values()) == [1] * 5
    assert (
        sorted(v[0] for v in by_cart.values())
        == [("email", "accepted")] * 2 + [("sms", "accepted")] * 3
    )
    # ... and every shopper got exactly one message for the step
    accepted = [c for c in recorder.calls if c[2] == "accepted"]
    assert len(accepted) == 5
