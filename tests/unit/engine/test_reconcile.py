"""Reconciling ``unknown`` sends (engine/reconcile.py): the vendor is asked on a durable
timer, its answer settles the delivery, nothing is ever resent."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from cartflow.engine.reconcile import next_look
from cartflow.engine.sending import SendResult, Sent
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Contact, Database, DiscountToken
from cartflow.engine.timers import RECONCILE
from cartflow.providers.recording import replies

from ..factories import T0, ClockedRecorder, cart_updated, decisions, deliveries, timers

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
TIMEOUT = SendResult.unknown("recording", "read timeout")


def push_of(db: Database):  # type: ignore[no-untyped-def]
    return next(d for d in deliveries(db) if d.channel == "push")


def test_an_unknown_push_the_vendor_has_becomes_accepted_and_is_not_resent(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a push whose answer was lost, and a vendor that says it has the message
    recorder.handler = replies(TIMEOUT)
    recorder.lookups = lambda sent: SendResult.accepted("recording", "vendor-42")
    sim.feed([cart_updated(T0)])

    # When a minute passes after the send
    sim.run_until(T0 + 32 * MINUTE)

    # Then the vendor was asked about that delivery (with its recipient), once
    push = push_of(db)
    (asked,) = recorder.looked_up
    assert (asked.delivery_id, asked.channel, asked.address) == (push.id, "push", "tok-1")
    assert asked.provider_message_id is None and asked.sent_at == T0 + 30 * MINUTE
    # ... the delivery is accepted with the vendor's id, and the push was sent only once
    assert (push.status, push.provider_message_id) == ("accepted", "vendor-42")
    assert push.sent_at == T0 + 30 * MINUTE
    assert [c for c, _, _ in recorder.calls] == ["push"]
    (sent,) = [d for d in decisions(db, "sent") if d.channel == "push" and "reconciled" in d.reason]
    assert sent.reason == "reconciled: recording has it"
    assert not [t for t in timers(db) if t.kind == RECONCILE]


def test_an_unknown_sms_the_vendor_refused_is_failed_with_its_signals(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given an SMS (with a discount code) whose answer was lost; the vendor says the
    # number does not exist
    recorder.handler = replies(SendResult.accepted("recording"), TIMEOUT)
    recorder.lookups = lambda sent: SendResult.permanent(
        "recording", "21211 invalid number", invalid_contact=True
    )
    sim.feed([cart_updated(T0)])

    # When the reconcile timer fires
    sim.run_until(T0 + 3 * HOUR + 2 * MINUTE)

    # Then the SMS is failed, its code released, the number never used again
    sms = next(d for d in deliveries(db) if d.channel == "sms")
    assert (sms.status, sms.error) == ("failed", "21211 invalid number")
    with db.sessions() as session:
        phone = session.scalar(select(Contact).where(Contact.channel == "sms"))
        code = session.get(DiscountToken, sms.token_code)
    assert phone is not None and phone.valid is False
    assert code is not None and code.status == "released"
    # ... and nothing was resent
    assert [c for c, _, _ in recorder.calls] == ["push", "sms"]


def test_a_vendor_that_cannot_tell_is_asked_again_with_backoff_then_it_is_final(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a push whose answer was lost and a vendor that never knows
    recorder.handler = replies(TIMEOUT)
    recorder.lookups = lambda sent: None
    sim.feed([cart_updated(T0)])

    # When two days pass
    sim.run_until(T0 + timedelta(days=2))

    # Then it was asked at +1m, then every minute to 10m, every 10 to an hour, then
    # hourly up to a day — and then the send is final, said once
    sent_at = T0 + 30 * MINUTE
    asked = len(recorder.looked_up)
    assert 30 <= asked <= 40, asked
    push = push_of(db)
    assert push.status == "unknown"
    (final,) = [d for d in decisions(db, "unknown") if d.reason.startswith("final")]
    assert final.reason == "final: recording could not tell within a day"
    assert final.at >= sent_at + timedelta(days=1)
    assert not [t for t in timers(db) if t.kind == RECONCILE]
    assert [c for c, _, _ in recorder.calls].count("push") == 1


def test_a_provider_that_cannot_be_asked_makes_unknown_final_at_once(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a push whose answer was lost, through a provider without a lookup
    recorder.handler = replies(TIMEOUT)
    sim.feed([cart_updated(T0)])

    # When its reconcile timer fires
    sim.run_until(T0 + HOUR)

    # Then it is final, with why, and never asked again
    (final,) = [d for d in decisions(db, "unknown") if d.reason.startswith("final")]
    assert final.reason == "final: recording cannot be asked what became of it"
    assert not [t for t in timers(db) if t.kind == RECONCILE]


def test_a_lookup_that_raises_is_asked_again_later(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a vendor whose lookup fails once, then says it has the message
    recorder.handler = replies(TIMEOUT)
    answers = iter([RuntimeError("502 from the vendor"), SendResult.accepted("recording", "v")])

    def lookups(sent: Sent) -> SendResult | None:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    recorder.lookups = lookups
    sim.feed([cart_updated(T0)])

    # When a few minutes pass
    sim.run_until(T0 + 35 * MINUTE)

    # Then the second look settled it
    assert len(recorder.looked_up) == 2
    assert push_of(db).status == "accepted"


def test_the_backoff_grows_with_the_age_of_the_send() -> None:
    assert next_look(timedelta(minutes=2)) == MINUTE
    assert next_look(timedelta(minutes=30)) == 10 * MINUTE
    assert next_look(timedelta(hours=5)) == HOUR
