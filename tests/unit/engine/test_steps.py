"""The send path (engine/steps.py, engine/guards.py): guards at send time, the delivery row
before the provider call, retries, failures, and at most one message per journey step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs

from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.retry import DEFAULT_RETRY
from cartflow.engine.sending import SendResult
from cartflow.engine.service import Engine
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Contact, Database, DiscountToken
from cartflow.engine.timers import JOURNEY_STEP, RECONCILE
from cartflow.providers.recording import replies

from ..factories import (
    T0,
    ClockedRecorder,
    build_engine,
    cart_updated,
    decisions,
    deliveries,
    event,
    journeys,
    moscow,
    order_completed,
    timers,
    write_config,
)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def in_quiet_hours(moment: datetime) -> bool:
    """21:00-09:00 Moscow."""
    hour = moscow(moment).hour
    return hour >= 21 or hour < 9


# -- quiet hours and windows --------------------------------------------------------------
def test_sms_due_at_night_is_deferred_to_the_window_opening(
    sim: Simulation, clock: SimulatedClock, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a cart left at 20:00 Moscow (17:00 UTC): push due 20:30, SMS due 23:00
    start = datetime(2026, 11, 22, 17, 0, tzinfo=UTC)
    clock.set(start)
    sim.feed([cart_updated(start)])

    # When the night passes
    sim.run_until(start + timedelta(days=2))

    # Then the push went out at 20:30 and the SMS waited for 10:00 (window opening)
    sent = {d.channel: d.created_at for d in deliveries(db)}
    assert moscow(sent["push"]) == datetime(2026, 11, 22, 20, 30)
    assert moscow(sent["sms"]) == datetime(2026, 11, 23, 10, 0)
    # ... and the email kept the 21 h the scenario planned after the SMS (+3h → +24h),
    # counted from when the SMS actually went: 07:00 Moscow the day after
    assert moscow(sent["email"]) == datetime(2026, 11, 24, 7, 0)
    # ... the deferral is on record with its reason and the time it waits for
    (deferred,) = decisions(db, "deferred")
    assert deferred.step_id == "sms" and deferred.channel == "sms"
    assert deferred.at == start + 3 * HOUR
    assert deferred.until == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    assert "quiet hours" in deferred.reason and "Europe/Moscow" in deferred.reason
    assert not any(in_quiet_hours(at) for channel, at, _ in recorder.calls if channel != "email")


def test_push_due_at_night_waits_for_nine_and_the_sms_keeps_its_gap(
    sim: Simulation, clock: SimulatedClock, db: Database
) -> None:
    # Given a cart left at 21:00 Moscow: push due 21:30, SMS due 00:00
    start = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
    clock.set(start)
    sim.feed([cart_updated(start)])

    # When the night passes
    sim.run_until(start + timedelta(days=2))

    # Then the push went at 09:00 (quiet hours end), and the SMS kept the 2½ h the
    # scenario puts between them (+30m → +3h): 11:30, not one hour later at 10:00
    sent = {d.channel: moscow(d.created_at) for d in deliveries(db)}
    assert sent["push"] == datetime(2026, 11, 23, 9, 0)
    assert sent["sms"] == datetime(2026, 11, 23, 11, 30)
    # ... and the email its 21 h after the SMS
    assert sent["email"] == datetime(2026, 11, 24, 8, 30)
    assert [d.step_id for d in decisions(db, "deferred")] == ["push"]


def test_time_zone_comes_from_the_profile(
    sim: Simulation, clock: SimulatedClock, db: Database
) -> None:
    # Given a shopper in Vladivostok (UTC+10) who leaves a cart at 10:00 UTC = 20:00 local
    start = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    clock.set(start)
    contact = {
        "phone": "+79991234567",
        "push_token": "tok",
        "email": "v@example.com",
        "timezone": "Asia/Vladivostok",
        "locale": "ru",
    }
    sim.feed(
        [
            event(
                "cart.updated",
                start,
                contact=contact,
                consent={"push": True, "sms": True, "email": True},
                cart={"id": "cart_1", "currency": "RUB", "items": [{"sku": "A", "price": 100}]},
            )
        ]
    )

    # When the day passes
    sim.run_until(start + timedelta(days=2))

    # Then the SMS due 23:00 local waited for 10:00 local (00:00 UTC)
    sms = next(d for d in deliveries(db) if d.channel == "sms")
    assert sms.created_at == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


# -- consent and reachability ---------------------------------------------------------------
def test_no_sms_consent_falls_back_to_email_with_the_sms_offer(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a shopper who agreed to push and email but not SMS
    sim.feed([cart_updated(T0, consent={"push": True, "sms": False, "email": True})])

    # When the journey runs
    sim.run_until(T0 + timedelta(days=3))

    # Then the SMS step went by email (its fallback) with the reason on record
    assert [m.channel for m in recorder.sent] == ["push", "email", "email"]
    assert not decisions(db, "skipped")
    (fallback,) = decisions(db, "fallback")
    assert fallback.step_id == "sms" and fallback.reason == "sms: no consent"
    by_step = {d.step_id: d for d in deliveries(db)}
    assert by_step["sms"].channel == "email" and by_step["sms"].created_at == T0 + 3 * HOUR
    assert "5%" in by_step["sms"].rendered["subject"]
    assert by_step["email"].created_at == T0 + 24 * HOUR
    # ... each step's own code was issued, none is left reserved
    with db.sessions() as session:
        tokens = session.scalars(select(DiscountToken)).all()
    assert sorted((t.step_id, t.status) for t in tokens) == [("email", "issued"), ("sms", "issued")]


def test_sms_consent_withdrawn_after_push_skips_only_the_sms(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given an abandoned cart whose push went out
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + HOUR)

    # When the shopper withdraws SMS consent (only) at +2h
    sim.feed([event("consent.updated", T0 + 2 * HOUR, consent={"sms": False})])
    sim.run_until(T0 + timedelta(days=3))

    # Then the SMS step falls back to email, and the email step still goes
    assert [m.channel for m in recorder.sent] == ["push", "email", "email"]
    assert decisions(db, "fallback")[0].reason == "sms: no consent"


def test_withdrawing_every_consent_exits_the_journey(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given an abandoned cart whose push went out
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + HOUR)

    # When the shopper withdraws consent on every channel
    sim.feed(
        [
            event(
                "consent.updated",
                T0 + 2 * HOUR,
                consent={"push": False, "sms": False, "email": False},
            )
        ]
    )
    sim.run_until(T0 + timedelta(days=3))

    # Then nothing else is sent and the journey exited as unsubscribed
    assert [m.channel for m in recorder.sent] == ["push"]
    (journey,) = journeys(db)
    assert (journey.status, journey.exit_reason) == ("exited", "unsubscribed")


def test_no_phone_number_sends_the_sms_step_by_email(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a shopper with consent everywhere but no phone number
    contact = {"email": "a@example.com", "push_token": "tok", "timezone": "Europe/Moscow"}
    sim.feed(
        [
            event(
                "cart.updated",
                T0,
                contact=contact,
                consent={"push": True, "sms": True, "email": True},
                cart={"id": "cart_1", "currency": "RUB", "items": [{"sku": "A", "price": 5}]},
            )
        ]
    )

    # When the journey runs
    sim.run_until(T0 + timedelta(days=3))

    # Then the SMS step goes by email because there is no number to text
    assert [m.channel for m in recorder.sent] == ["push", "email", "email"]
    assert decisions(db, "fallback")[0].reason == "sms: no valid contact"


# -- provider failures ------------------------------------------------------------------------
def test_retryable_failure_is_retried_and_sent_once(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a provider that refuses the first push with "try again in 2 minutes"
    recorder.handler = replies(SendResult.retryable("recording", "HTTP 503", retry_after=120))
    sim.feed([cart_updated(T0)])

    # When the journey runs
    sim.run_until(T0 + timedelta(days=3))

    # Then the push was tried at +30m and again at +32m, and accepted once
    pushes = [(at, status) for channel, at, status in recorder.calls if channel == "push"]
    assert pushes == [(T0 + 30 * MINUTE, "retryable"), (T0 + 32 * MINUTE, "accepted")]
    assert [m.channel for m in recorder.sent] == ["push", "sms", "email"]
    push = deliveries(db)[0]
    assert (push.channel, push.status, push.attempts) == ("push", "accepted", 2)
    (retry,) = decisions(db, "retry")
    assert "HTTP 503" in retry.reason


def test_retryable_failure_without_retry_after_waits_five_minutes_and_its_jitter(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a provider that refuses the first push without saying when to come back
    recorder.handler = replies(SendResult.retryable("recording", "connection refused"))
    sim.feed([cart_updated(T0)])

    # When the push is due
    sim.run_until(T0 + HOUR)

    # Then it is retried after the default wait (five minutes) and at most 10% more,
    # the same for this delivery every time
    first, second = [at for _, at, _ in recorder.calls]
    assert first == T0 + 30 * MINUTE
    assert 5 * MINUTE <= second - first <= 5.5 * MINUTE
    (push,) = deliveries(db)
    assert second - first == DEFAULT_RETRY.wait_after(1, None, push.id)


def test_retryable_failures_give_up_after_max_attempts_and_the_journey_continues(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a provider that refuses the push every time
    recorder.handler = replies(
        *[SendResult.retryable("recording", "HTTP 429", retry_after=60)] * DEFAULT_RETRY.attempts
    )
    sim.feed([cart_updated(T0)])

    # When the journey runs
    sim.run_until(T0 + timedelta(days=3))

    # Then the push was tried DEFAULT_RETRY.attempts times, then marked failed; SMS and email follow
    assert [c for c, _, _ in recorder.calls].count("push") == DEFAULT_RETRY.attempts
    push, sms, email = deliveries(db)
    assert (push.status, push.attempts) == ("failed", DEFAULT_RETRY.attempts)
    assert (sms.status, email.status) == ("accepted", "accepted")


def test_permanent_failure_marks_the_delivery_failed_and_the_journey_continues(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a provider that rejects the push for good
    recorder.handler = replies(SendResult.permanent("recording", "bad push token"))
    sim.feed([cart_updated(T0)])

    # When the journey runs
    with capture_logs() as logs:
        sim.run_until(T0 + timedelta(days=3))

    # Then the push is failed after one attempt, never retried, and SMS and email follow
    assert [c for c, _, _ in recorder.calls] == ["push", "sms", "email"]
    push, sms, email = deliveries(db)
    assert (push.status, push.attempts, push.error) == ("failed", 1, "bad push token")
    assert (sms.status, email.status) == ("accepted", "accepted")
    assert [d.step_id for d in decisions(db, "failed")] == ["push"]
    assert any(log["event"] == "step_failed" and log["reason"] == "bad push token" for log in logs)
    (journey,) = journeys(db)
    assert journey.status == "completed"


def test_permanent_failure_releases_the_discount_token(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a provider that accepts the push and rejects the SMS (which carries 5% off)
    recorder.handler = replies(
        *[SendResult.accepted("recording"), SendResult.permanent("recording", "number blocked")]
    )
    sim.feed([cart_updated(T0)])

    # When the journey runs
    sim.run_until(T0 + timedelta(days=3))

    # Then the SMS's token is released; the SMS step fell over to email with a new
    # token of its own, and the email step has its own
    with db.sessions() as session:
        tokens = sorted((t.step_id, t.status) for t in session.scalars(select(DiscountToken)))
    assert tokens == [("email", "issued"), ("sms", "issued"), ("sms", "released")]


def test_invalid_contact_is_marked_and_not_used_again(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a provider that says the phone number does not exist
    recorder.handler = replies(
        *[
            SendResult.accepted("recording"),
            SendResult.permanent("recording", "no such number", invalid_contact=True),
        ]
    )
    sim.feed([cart_updated(T0)])

    # When the journey runs
    sim.run_until(T0 + timedelta(days=3))

    # Then the contact is marked invalid with the reason
    with db.sessions() as session:
        phone = session.scalar(select(Contact).where(Contact.channel == "sms"))
    assert phone is not None
    assert (phone.valid, phone.invalid_reason) == (False, "no such number")


def test_unknown_outcome_is_never_resent(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a provider that times out after the push request left
    recorder.handler = replies(SendResult.unknown("recording", "read timeout"))
    sim.feed([cart_updated(T0)])

    # When the journey runs
    sim.run_until(T0 + timedelta(days=3))

    # Then the push is "unknown" (to reconcile), tried once, and the journey goes on
    assert [c for c, _, _ in recorder.calls] == ["push", "sms", "email"]
    assert deliveries(db)[0].status == "unknown"


def test_order_while_a_retry_waits_cancels_the_retry(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a push refused with "retry in 10 minutes"
    recorder.handler = replies(SendResult.retryable("recording", "HTTP 503", retry_after=600))
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + 31 * MINUTE)

    # When the shopper pays before the retry
    sim.feed([order_completed(T0 + 35 * MINUTE)])
    sim.run_until(T0 + timedelta(days=3))

    # Then the push is never sent
    assert recorder.sent == []
    assert [at for _, at, _ in recorder.calls] == [T0 + 30 * MINUTE]
    (journey,) = journeys(db)
    assert journey.exit_reason == "order.completed"
    assert deliveries(db)[0].status != "accepted"


def test_retry_never_sends_during_quiet_hours(
    sim: Simulation, clock: SimulatedClock, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a cart left at 20:25 Moscow, so the push is due at 20:55
    start = datetime(2026, 11, 22, 17, 25, tzinfo=UTC)
    clock.set(start)
    # ... and a provider that refuses it with "retry in 10 minutes" (→ 21:05, quiet hours)
    recorder.handler = replies(SendResult.retryable("recording", "HTTP 503", retry_after=600))
    sim.feed([cart_updated(start)])

    # When the night passes
    sim.run_until(start + timedelta(days=1))

    # Then no push or SMS reached the provider during 21:00-09:00 Moscow
    night = [(c, moscow(at)) for c, at, _ in recorder.calls if c != "email" and in_quiet_hours(at)]
    assert night == []


def test_retry_never_sends_after_consent_is_withdrawn(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given an abandoned cart whose push went out and whose SMS (at +3h) is refused with
    # "retry in 10 minutes"
    recorder.handler = replies(
        *[
            SendResult.accepted("recording"),
            SendResult.retryable("recording", "HTTP 503", retry_after=600),
        ]
    )
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + 3 * HOUR + MINUTE)

    # When the shopper withdraws SMS consent before the retry
    sim.feed([event("consent.updated", T0 + 3 * HOUR + 5 * MINUTE, consent={"sms": False})])
    sim.run_until(T0 + timedelta(days=3))

    # Then no SMS is ever accepted
    assert [m.channel for m in recorder.sent] == ["push", "email"]


# -- at most once per step --------------------------------------------------------------------
def _claim_push(engine: Engine, clock: SimulatedClock) -> list:  # type: ignore[type-arg]
    """Run the idle check at +30m and claim the push step's timer."""
    clock.set(T0 + 30 * MINUTE)
    for claim in engine.claim_due():
        engine.fire(claim)  # the idle timer: starts the journey, sets the step timer
    claims = engine.claim_due()
    assert [c.kind for c in claims] == [JOURNEY_STEP]
    return claims


def test_firing_the_same_claim_twice_sends_once(
    engine: Engine, clock: SimulatedClock, db: Database, recorder: ClockedRecorder
) -> None:
    # Given an abandoned cart whose push timer has been claimed
    engine.apply_events(engine.ingest([cart_updated(T0)]))
    (claim,) = _claim_push(engine, clock)

    # When the claim is fired twice (a redelivered broker message)
    first = engine.fire(claim)
    second = engine.fire(claim)

    # Then one message went out; the second run saw the timer had moved on
    assert first.decision == "sent"
    assert second.decision == "stale"
    assert len(recorder.calls) == 1
    assert len(deliveries(db)) == 1


def test_expired_lease_reclaimed_by_another_dispatcher_sends_once(
    engine: Engine, clock: SimulatedClock, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a push timer claimed by a worker that stalls past its lease
    engine.apply_events(engine.ingest([cart_updated(T0)]))
    (slow,) = _claim_push(engine, clock)
    clock.advance(timedelta(seconds=61))
    (fast,) = engine.claim_due()
    assert fast.timer_id == slow.timer_id and fast.token != slow.token

    # When both run, the newer claim first
    outcomes = [engine.fire(fast).decision, engine.fire(slow).decision]

    # Then one message went out
    assert outcomes == ["sent", "stale"]
    assert len(recorder.calls) == 1


class WorkerDied(BaseException):
    """Stands in for a worker killed while the provider request is in flight."""


def test_worker_dying_mid_send_leaves_delivery_unknown_and_never_resends(
    engine: Engine, clock: SimulatedClock, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a push whose worker dies after the request may have left
    engine.apply_events(engine.ingest([cart_updated(T0)]))
    (claim,) = _claim_push(engine, clock)
    calls: list[str] = []

    def die(message: object) -> SendResult:
        calls.append("push")
        raise WorkerDied

    original = recorder.send
    recorder.send = die  # type: ignore[method-assign]
    with pytest.raises(WorkerDied):
        engine.fire(claim)
    recorder.send = original  # type: ignore[method-assign]
    assert deliveries(db)[0].status == "sending"

    # When the lease runs out and another worker picks the step up
    clock.advance(timedelta(seconds=61))
    outcomes = [engine.fire(c) for c in engine.claim_due()]

    # Then the delivery is "unknown" (to reconcile), it is not sent again, and the
    # journey moves on to the SMS
    assert [o.decision for o in outcomes] == ["unknown"]
    assert deliveries(db)[0].status == "unknown"
    assert recorder.calls == [] and calls == ["push"]
    assert [d.decision for d in decisions(db) if d.step_id == "push"] == ["unknown"]
    (journey,) = journeys(db)
    assert journey.step_index == 1
    step_timer, reconcile = sorted(timers(db), key=lambda t: t.kind != JOURNEY_STEP)
    assert (step_timer.kind, step_timer.due_at) == (JOURNEY_STEP, T0 + 3 * HOUR)
    # ... and the vendor is to be asked what became of it (engine/reconcile.py)
    assert (reconcile.kind, reconcile.ref) == (RECONCILE, deliveries(db)[0].id)


# -- caps, holdout ------------------------------------------------------------------------------
SMS_ONLY = """\
scenario: sms_only
trigger: {on: cart.abandoned, idle: 30m}
reentry: 0m
steps:
  - {id: sms, after: 3h, channel: sms, window: "10:00-20:00",
     discount: {percent: 5, ttl: 48h}, template: abandoned_cart/sms%s}
"""


def _engine_for(
    config_yaml: str, tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> Simulation:
    config = write_config(tmp_path / "config", config_yaml)
    return Simulation(build_engine(db, clock, ConfigHolder(config), recorder), clock)


def test_sms_cap_defers_a_second_sms_by_24_hours(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given a scenario that sends one SMS 3h after abandonment, with no re-entry cooldown
    sim = _engine_for(SMS_ONLY % "", tmp_path, db, clock, recorder)

    # When the shopper abandons two carts an hour apart, with different items (the same
    # items would be the same intent: one journey)
    other = [{"sku": "SKU-2", "price": 100}]
    sim.feed(
        [cart_updated(T0, cart_id="cart_1"), cart_updated(T0 + HOUR, cart_id="cart_2", items=other)]
    )
    sim.run_until(T0 + timedelta(days=3))

    # Then the second SMS waited until 24h after the first (cap sms 1/24h)
    first, second = (d.created_at for d in deliveries(db))
    assert first == T0 + 3 * HOUR
    assert second == first + 24 * HOUR
    (deferred,) = decisions(db, "deferred")
    assert "cap 1/1d on sms" in deferred.reason
    assert deferred.until == second


def test_sms_cap_with_on_cap_skip_skips_the_second_sms(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given the same scenario, but a cap makes the step skip instead of waiting
    sim = _engine_for(SMS_ONLY % ", on_cap: skip", tmp_path, db, clock, recorder)

    # When the shopper abandons two carts an hour apart, with different items (the same
    # items would be the same intent: one journey)
    other = [{"sku": "SKU-2", "price": 100}]
    sim.feed(
        [cart_updated(T0, cart_id="cart_1"), cart_updated(T0 + HOUR, cart_id="cart_2", items=other)]
    )
    sim.run_until(T0 + timedelta(days=3))

    # Then only one SMS goes out, and the skip is explained
    assert len(recorder.sent) == 1
    (skipped,) = decisions(db, "skipped")
    assert skipped.cart_id == "cart_2" and "frequency cap" in skipped.reason


def test_holdout_journey_sends_nothing_but_records_why(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given a scenario with everyone in the control group
    sim = _engine_for(
        (SMS_ONLY % "").replace("reentry: 0m", "holdout: 100%"), tmp_path, db, clock, recorder
    )

    # When a cart is abandoned
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + timedelta(days=2))

    # Then the journey runs in the holdout group and sends nothing
    assert recorder.calls == []
    (journey,) = journeys(db)
    assert (journey.group, journey.status) == ("holdout", "completed")
    assert "holdout" in decisions(db, "skipped")[0].reason


def test_expired_journey_ends_before_a_late_step(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given a scenario that expires 2h after abandonment, with an SMS due at +3h
    scenario = """\
scenario: short
expires: 2h
steps:
  - {id: push, after: 30m, channel: push, template: abandoned_cart/push}
  - {id: sms, after: 3h, channel: sms, discount: {percent: 5}, template: abandoned_cart/sms}
"""
    sim = _engine_for(scenario, tmp_path, db, clock, recorder)

    # When a cart is abandoned
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + timedelta(days=1))

    # Then only the push goes out, and the journey says it expired
    assert [m.channel for m in recorder.sent] == ["push"]
    (journey,) = journeys(db)
    assert journey.status == "exited"
    assert "expired before step sms" in (journey.exit_reason or "")


MULTI = """\
{% block title %}Корзина ждёт{% endblock %}
{% block body %}{{ cart.item_count }} шт.{% endblock %}
{% block text %}Ваша корзина ждёт: {{ links.cart }}{% endblock %}
{% block subject %}Корзина ждёт{% endblock %}
"""


def test_no_consent_on_the_channel_falls_back_to_the_next_one(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given a step on SMS with an email fallback, and a shopper without SMS consent
    scenario = """\
scenario: fallback
steps:
  - {id: remind, after: 30m, channel: sms, fallback: [email], template: test/multi}
"""
    config = write_config(tmp_path / "config", scenario, templates={"test/multi.ru.j2": MULTI})
    sim = Simulation(build_engine(db, clock, ConfigHolder(config), recorder), clock)
    sim.feed([cart_updated(T0, consent={"push": True, "sms": False, "email": True})])

    # When the step runs
    sim.run_until(T0 + timedelta(days=1))

    # Then the reminder went by email, and the fallback is explained
    (delivery,) = deliveries(db)
    assert (delivery.step_id, delivery.channel) == ("remind", "email")
    assert recorder.sent[0].parts["subject"] == "Корзина ждёт"
    (fallback,) = decisions(db, "fallback")
    assert fallback.reason == "sms: no consent"


def test_a_step_waits_while_the_visitor_is_browsing(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given an abandoned cart whose push went out
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + HOUR)

    # When the shopper is back on the site 5 minutes before the SMS is due
    sim.feed([event("page.viewed", T0 + 3 * HOUR - 5 * MINUTE)])
    sim.run_until(T0 + timedelta(days=2))

    # Then the SMS waits until 10 minutes after her last page view
    sms = next(d for d in deliveries(db) if d.channel == "sms")
    assert sms.created_at == T0 + 3 * HOUR + 5 * MINUTE
    (deferred,) = decisions(db, "deferred")
    assert (deferred.step_id, deferred.reason) == ("sms", "visitor is browsing right now")


def test_provider_reported_unsubscribe_withdraws_consent(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given an SMS-only scenario without re-entry cooldown, and a provider that answers
    # the first SMS with "recipient unsubscribed"
    sim = _engine_for(SMS_ONLY % "", tmp_path, db, clock, recorder)
    recorder.handler = replies(
        SendResult.permanent("recording", "recipient replied STOP", consent_withdrawn=True)
    )
    sim.feed([cart_updated(T0, cart_id="cart_1")])
    sim.run_until(T0 + timedelta(days=1))

    # When she abandons another cart two days later
    sim.feed([cart_updated(T0 + timedelta(days=2), cart_id="cart_2", with_contact=False)])
    sim.run_until(T0 + timedelta(days=4))

    # Then the engine never texts her again
    assert [c for c, _, _ in recorder.calls] == ["sms"]


def test_time_zone_falls_back_to_the_phone_numbers_region(
    sim: Simulation, clock: SimulatedClock, db: Database
) -> None:
    # Given a shopper with a New York number and no time zone, who leaves a cart at
    # 12:00 UTC (07:00 in New York, 15:00 in Moscow, the shop default)
    start = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    clock.set(start)
    contact = {"phone": "+1 212 555 0123", "push_token": "tok", "locale": "en"}
    sim.feed(
        [
            event(
                "cart.updated",
                start,
                contact=contact,
                consent={"push": True, "sms": True},
                cart={"id": "cart_1", "currency": "USD", "items": [{"sku": "A", "price": 20}]},
            )
        ]
    )

    # When the push falls due at 07:30 New York time
    sim.run_until(start + timedelta(hours=3))

    # Then it waits for 09:00 in New York (14:00 UTC), not Moscow hours
    push = deliveries(db)[0]
    assert push.created_at == datetime(2026, 11, 22, 14, 0, tzinfo=UTC)
    assert "America/New_York" in decisions(db, "deferred")[0].reason
