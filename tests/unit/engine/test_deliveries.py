"""What happens to a delivery is kept as events, and the vocabulary is one enum."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from cartflow.engine.deliveries import (
    ENGAGEMENT,
    DeliveryEvent,
    DeliveryStatus,
    at_least,
    delivery_key,
)
from cartflow.engine.sending import SendResult
from cartflow.engine.simulation import Simulation
from cartflow.engine.store import Database
from cartflow.engine.store.models import DeliveryEventRow
from cartflow.providers.recording import replies

from ..factories import T0, ClockedRecorder, cart_updated, deliveries


def events(db: Database) -> list[tuple[str, str | None]]:
    with db.reading() as session:
        rows = session.scalars(select(DeliveryEventRow).order_by(DeliveryEventRow.id))
        return [(r.status, r.raw_status) for r in rows]


def test_an_accepted_and_a_refused_send_leave_an_event_each(
    sim: Simulation, db: Database, recorder: ClockedRecorder
) -> None:
    # Given a push the provider takes and an SMS it refuses for good
    recorder.handler = replies(
        SendResult.accepted("recording", "m1"), SendResult.permanent("recording", "bad number")
    )
    sim.feed([cart_updated(T0)])
    sim.run_until(T0 + timedelta(hours=4))
    # Then each delivery keeps its state, and what happened is an event
    states = {(d.step_id, d.channel): d.status for d in deliveries(db)}
    assert states[("push", "push")] == DeliveryStatus.ACCEPTED
    assert states[("sms", "sms")] == DeliveryStatus.FAILED
    assert events(db)[:2] == [("accepted", "recording"), ("failed", "bad number")]


def test_engagement_levels_imply_the_weaker_ones() -> None:
    assert at_least("delivered") == ENGAGEMENT
    assert at_least("opened") == (DeliveryEvent.OPENED, DeliveryEvent.CLICKED)
    assert at_least("clicked") == (DeliveryEvent.CLICKED,)


def test_the_first_delivery_of_a_step_keeps_the_historic_key() -> None:
    assert delivery_key("j", "sms") == "j:sms"
    assert delivery_key("j", "sms", 2) == "j:sms:2"
