"""Failover (engine/failover.py): a step whose channel fails at the provider tries its next
channel at once — never two live deliveries for one step, never after ``unknown``."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from cartflow.engine.channels import CHANNELS
from cartflow.engine.clock import SimulatedClock
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.errors import ConfigError
from cartflow.engine.receipt_log import Recorded, record_receipts
from cartflow.engine.receipts import Receipt, ReceiptStatus
from cartflow.engine.retry import DEFAULT_RETRY
from cartflow.engine.sending import SendResult
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Consent, Contact, Database, Delivery, DiscountToken
from cartflow.providers.recording import replies

from ..factories import (
    T0,
    ClockedRecorder,
    build_engine,
    cart_updated,
    decisions,
    deliveries,
    fresh_database,
    journeys,
    write_config,
)

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
TEMPLATES = "{push: abandoned_cart/push, sms: abandoned_cart/sms, email: abandoned_cart/email}"
#: One step: push, falling over to SMS, then email; 30 minutes after abandonment.
ONE_STEP = f"""\
scenario: failover
trigger: {{on: cart.abandoned, idle: 30m}}
reentry: 0m
steps:
  - {{id: remind, after: 30m, channel: push, fallback: [sms, email],
     discount: {{percent: 5, ttl: 48h}}, template: {TEMPLATES}}}
"""
#: Then a second step, to see the journey go on after the first.
TWO_STEPS = (
    ONE_STEP
    + """\
  - {id: later, after: 1d, channel: email, discount: {percent: 10, ttl: 72h},
     template: abandoned_cart/email}
"""
)


def in_order(db: Database) -> list[Delivery]:
    """Deliveries as they were tried: a failover runs at the same simulated instant, so
    within one instant by the order the step lists its channels."""
    return sorted(deliveries(db), key=lambda d: (d.created_at, CHANNELS.index(d.channel)))


def simulation(
    yaml: str, tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> Simulation:
    config = write_config(tmp_path / "config", yaml)
    return Simulation(build_engine(db, clock, ConfigHolder(config), recorder), clock)


def test_an_invalid_push_token_is_removed_and_the_step_goes_by_sms_at_once(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given a push step falling over to SMS, and FCM saying the token is unregistered
    sim = simulation(ONE_STEP, tmp_path, db, clock, recorder)
    recorder.handler = replies(
        SendResult.permanent("recording", "UNREGISTERED", invalid_contact=True)
    )
    sim.feed([cart_updated(T0)])

    # When the step runs
    sim.run_until(T0 + timedelta(hours=2))

    # Then the token is never used again and the same step went by SMS, within seconds
    assert [(c, s) for c, _, s in recorder.calls] == [("push", "permanent"), ("sms", "accepted")]
    (push_at, sms_at) = (at for _, at, _ in recorder.calls)
    assert sms_at - push_at <= timedelta(seconds=5)
    with db.sessions() as session:
        token = session.scalar(select(Contact).where(Contact.channel == "push"))
    assert token is not None and (token.valid, token.invalid_reason) == (False, "UNREGISTERED")
    push, sms = in_order(db)
    assert (push.step_id, push.channel, push.status) == ("remind", "push", "failed")
    assert (sms.step_id, sms.channel, sms.status) == ("remind", "sms", "accepted")
    # ... and the log says why: the failure names what is tried next, the fallback why
    (failed,) = decisions(db, "failed")
    assert failed.reason == "recording: UNREGISTERED; trying sms then email"
    (fallback,) = decisions(db, "fallback")
    assert fallback.reason.startswith("push: failed at the provider")
    assert journeys(db)[0].status == "completed"


def test_an_unroutable_number_with_a_valid_contact_still_falls_over_and_only_once(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given push and SMS both refused for good, the contacts still marked valid
    sim = simulation(TWO_STEPS, tmp_path, db, clock, recorder)
    recorder.handler = replies(
        SendResult.permanent("recording", "no route"),
        SendResult.permanent("recording", "no route"),
    )
    sim.feed([cart_updated(T0)])

    # When the journey runs
    sim.run_until(T0 + timedelta(days=3))

    # Then the first step tried each channel once, in order, and the journey went on
    assert [(c, s) for c, _, s in recorder.calls] == [
        ("push", "permanent"),
        ("sms", "permanent"),
        ("email", "accepted"),
        ("email", "accepted"),
    ]
    assert [(d.step_id, d.channel, d.status) for d in in_order(db)] == [
        ("remind", "push", "failed"),
        ("remind", "sms", "failed"),
        ("remind", "email", "accepted"),
        ("later", "email", "accepted"),
    ]


def test_the_last_channel_failing_ends_the_step_and_the_journey_continues(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given every channel of the first step refused
    sim = simulation(TWO_STEPS, tmp_path, db, clock, recorder)
    recorder.handler = replies(*[SendResult.permanent("recording", "refused")] * 3)
    sim.feed([cart_updated(T0)])

    # When the journey runs
    sim.run_until(T0 + timedelta(days=3))

    # Then nothing is tried twice, and the second step still goes when planned
    channels = [(d.step_id, d.channel, d.status) for d in in_order(db)]
    assert channels[:3] == [
        ("remind", "push", "failed"),
        ("remind", "sms", "failed"),
        ("remind", "email", "failed"),
    ]
    later = in_order(db)[3]
    assert (later.step_id, later.status) == ("later", "accepted")
    assert later.created_at == T0 + timedelta(days=1)


def test_an_unknown_answer_never_falls_over(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given a push whose request may have left (read timeout)
    sim = simulation(ONE_STEP, tmp_path, db, clock, recorder)
    recorder.handler = replies(SendResult.unknown("recording", "read timeout"))
    sim.feed([cart_updated(T0)])

    # When the step runs
    sim.run_until(T0 + timedelta(days=1))

    # Then the shopper may have the push: no SMS follows for that step
    assert [c for c, _, _ in recorder.calls] == ["push"]
    assert [d.status for d in in_order(db)] == ["unknown"]


def test_retries_run_out_then_the_step_falls_over(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given a push provider that is down (503) for every attempt
    sim = simulation(ONE_STEP, tmp_path, db, clock, recorder)
    down = SendResult.retryable("recording", "503 unavailable")
    recorder.handler = replies(*[down] * DEFAULT_RETRY.attempts)
    sim.feed([cart_updated(T0)])

    # When the step runs
    sim.run_until(T0 + timedelta(days=1))

    # Then the push is given up after its attempts and the SMS goes
    assert [c for c, _, _ in recorder.calls] == ["push"] * DEFAULT_RETRY.attempts + ["sms"]
    push, sms = in_order(db)
    assert (push.status, push.attempts) == ("failed", DEFAULT_RETRY.attempts)
    assert sms.status == "accepted"


def test_a_fallback_sms_at_night_waits_for_the_window(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given a push refused at 23:30 Moscow (quiet hours 21:00-09:00 hold for SMS)
    sim = simulation(ONE_STEP, tmp_path, db, clock, recorder)
    recorder.handler = replies(SendResult.permanent("recording", "bad token", invalid_contact=True))
    start = T0 + timedelta(hours=13)  # 23:00 Moscow; the step is due 23:30
    clock.set(start)
    sim.feed([cart_updated(start)])

    # When the night passes
    sim.run_until(start + timedelta(days=1))

    # Then nothing left at night on push or SMS (quiet hours hold for the fallback too),
    # and the step ended on SMS in the morning
    for channel, at, _ in recorder.calls:
        hour = (at + timedelta(hours=3)).hour
        assert channel == "email" or not (hour >= 21 or hour < 9), (channel, at)
    assert [c for c, _, _ in recorder.calls][-1] == "sms"


ANSWERS = st.sampled_from(
    [
        SendResult.accepted("recording"),
        SendResult.permanent("recording", "refused"),
        SendResult.permanent("recording", "bad contact", invalid_contact=True),
        SendResult.permanent("recording", "STOP", consent_withdrawn=True),
        SendResult.retryable("recording", "429"),
        SendResult.unknown("recording", "timeout"),
    ]
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(answers=st.lists(ANSWERS, max_size=8))
def test_whatever_providers_answer_a_step_reaches_the_shopper_at_most_once(
    answers: list[SendResult],
    migrated_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Given any sequence of provider answers, on a fresh database each time
    directory = tmp_path_factory.mktemp("failover")
    db = fresh_database(migrated_template, directory)
    try:
        clock = SimulatedClock(T0)
        recorder = ClockedRecorder(clock)
        recorder.handler = replies(*answers)
        sim = simulation(TWO_STEPS, directory, db, clock, recorder)
        sim.feed([cart_updated(T0)])

        # When the journey runs to its end
        sim.run_until(T0 + timedelta(days=4))

        # Then no step has two deliveries that may have reached the shopper, and a
        # channel is tried at most once per step
        reached: dict[str, int] = {}
        tried: dict[str, list[str]] = {}
        for d in deliveries(db):
            if d.status in ("accepted", "unknown", "sending", "pending"):
                reached[d.step_id] = reached.get(d.step_id, 0) + 1
            tried.setdefault(d.step_id, []).append(d.channel)
        assert all(n <= 1 for n in reached.values()), reached
        assert all(len(set(c)) == len(c) for c in tried.values()), tried
        # ... and every send the provider saw is a delivery row (nothing sent unrecorded)
        assert len(recorder.calls) == sum(d.attempts for d in deliveries(db))
    finally:
        db.dispose()


# -- failover on an undelivered receipt (failover_within) ---------------------------------
WAITS = f"""\
scenario: waits
trigger: {{on: cart.abandoned, idle: 30m}}
reentry: 0m
steps:
  - {{id: remind, after: 30m, channel: sms, fallback: [email], failover_within: 15m,
     discount: {{percent: 5, ttl: 48h}}, template: {TEMPLATES}}}
  - {{id: later, after_previous: 2h, channel: email, discount: {{percent: 10, ttl: 72h}},
     template: abandoned_cart/email}}
"""


def receipt(db: Database, delivery: Delivery, status: ReceiptStatus, at: datetime) -> Recorded:
    """What the receipts endpoint does with one callback about ``delivery``."""
    assert delivery.provider_message_id is not None
    found = Receipt("recording", delivery.provider_message_id, status, at, reason="30003")
    return record_receipts(db, "recording", [found], at)


def test_an_undelivered_receipt_within_the_timeout_sends_the_step_by_email_at_once(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given the SMS of a step that waits 15 minutes for its receipt went out
    sim = simulation(WAITS, tmp_path, db, clock, recorder)
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + 31 * MINUTE)
    (sms,) = deliveries(db)
    assert (sms.channel, sms.status) == ("sms", "accepted")

    # When the carrier reports it undelivered 5 minutes later
    assert receipt(db, sms, ReceiptStatus.FAILED, T0 + 35 * MINUTE).stored == 1
    sim.run_until(T0 + 36 * MINUTE)

    # Then the same step went by email at once, and the SMS is failed with its code back
    assert [c for c, _, _ in recorder.calls] == ["sms", "email"]
    sms, email = in_order(db)
    assert (sms.status, sms.error) == ("failed", "not delivered: 30003")
    assert (email.step_id, email.channel, email.status) == ("remind", "email", "accepted")
    assert recorder.calls[1][1] <= T0 + 35 * MINUTE + timedelta(seconds=5)
    with db.sessions() as session:
        codes = {t.delivery_id: t.status for t in session.scalars(select(DiscountToken))}
    assert codes[sms.id] == "released" and codes[email.id] == "issued"

    # ... and a late "delivered" for the SMS sends nothing more; the journey goes on
    assert receipt(db, sms, ReceiptStatus.DELIVERED, T0 + 50 * MINUTE).stored == 1
    sim.run_until(T0 + timedelta(days=1))
    assert [(d.step_id, d.channel) for d in in_order(db)] == [
        ("remind", "sms"),
        ("remind", "email"),
        ("later", "email"),
    ]


def test_no_receipt_within_the_timeout_moves_on_without_the_fallback(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given a step that waits 15 minutes for its SMS's receipt, and no receipt comes
    sim = simulation(WAITS, tmp_path, db, clock, recorder)
    sim.feed([cart_updated(T0)])

    # When the journey runs
    sim.run_until(T0 + timedelta(days=1))

    # Then the step ended on SMS, and the next step kept its 2 hours from the SMS
    sms, later = in_order(db)
    assert (sms.channel, sms.status, later.step_id) == ("sms", "accepted", "later")
    assert later.created_at == sms.sent_at + 2 * HOUR
    # ... a receipt after the wait changes nothing
    assert receipt(db, sms, ReceiptStatus.FAILED, T0 + timedelta(days=1)).stored == 1
    sim.run_until(T0 + timedelta(days=2))
    assert len(deliveries(db)) == 2


def test_a_delivered_receipt_ends_the_wait(
    tmp_path: Path, db: Database, clock: SimulatedClock, recorder: ClockedRecorder
) -> None:
    # Given a step waiting for its SMS's receipt
    sim = simulation(WAITS, tmp_path, db, clock, recorder)
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + 31 * MINUTE)
    (sms,) = deliveries(db)

    # When it is delivered, and a failure is reported afterwards (out of order)
    receipt(db, sms, ReceiptStatus.DELIVERED, T0 + 32 * MINUTE)
    sim.run_until(T0 + 33 * MINUTE)
    receipt(db, sms, ReceiptStatus.FAILED, T0 + 34 * MINUTE)
    sim.run_until(T0 + timedelta(days=1))

    # Then it stays the step's message: no email for that step
    assert [(d.step_id, d.channel, d.status) for d in in_order(db)] == [
        ("remind", "sms", "accepted"),
        ("later", "email", "accepted"),
    ]
    (journey,) = journeys(db)
    assert "awaiting" not in (journey.state or {})


def test_failover_within_needs_a_fallback(tmp_path: Path) -> None:
    # Given a step that waits for a receipt with nowhere to fall over to
    broken = WAITS.replace("fallback: [email], ", "")

    # When the configuration loads, then it says what to fix, where
    with pytest.raises(ConfigError) as raised:
        write_config(tmp_path / "config", broken)
    assert "'failover_within' needs a 'fallback' channel to move to" in str(raised.value)


# -- what receipts say about the shopper --------------------------------------------------
def test_an_undeliverable_receipt_marks_the_number_invalid_and_an_unsubscribe_withdraws(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given the shipped scenario's push and SMS went out
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + 4 * HOUR)
    push, sms = (d for d in in_order(db) if d.channel in ("push", "sms"))

    # When the SMS is reported undeliverable and the push unsubscribed
    receipt(db, sms, ReceiptStatus.UNDELIVERABLE, T0 + 4 * HOUR)
    receipt(db, push, ReceiptStatus.UNSUBSCRIBED, T0 + 4 * HOUR)

    # Then the number is never used again and push consent is withdrawn, saying by whom
    with db.sessions() as session:
        phone = session.scalar(select(Contact).where(Contact.channel == "sms"))
        consent = session.get(Consent, (push.profile_id, "push"))
    assert phone is not None and (phone.valid, phone.invalid_reason) == (
        False,
        "recording: 30003",
    )
    assert consent is not None and not consent.granted
    assert consent.source == f"provider:recording:{push.id}:unsubscribed"
