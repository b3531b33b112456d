"""What is found after a worker vanished mid-send (architecture §5).

A delivery ``sending`` whose worker is gone may have reached the provider: it becomes
``unknown`` (reconciled with the provider, never sent again) once ``sending_grace`` has
passed — by the step's own timer when it fires again (:func:`recover`), and by a sweep
for journeys that ended meanwhile (:func:`settle_abandoned`), so no delivery stays
``sending``. Both go through the one transition,
:func:`cartflow.engine.deliveries.mark_unknown`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from cartflow.engine import deliveries
from cartflow.engine.decisions import record_for
from cartflow.engine.deliveries import LEFT_SENDING, DeliveryStatus
from cartflow.engine.failover import confirm
from cartflow.engine.journeys import advance
from cartflow.engine.outcomes import Outcome, StepResult
from cartflow.engine.scenario.loader import CompiledScenario
from cartflow.engine.store.models import Delivery, Journey


def recover(
    session: Session,
    scenario: CompiledScenario,
    journey: Journey,
    delivery: Delivery,
    now: datetime,
    grace: timedelta,
) -> StepResult:
    """The step's timer fired again and its delivery is past ``pending``."""
    waited = confirm(session, scenario, journey, delivery, now)  # awaiting its receipt
    if waited is not None:
        return waited
    went_at = delivery.sent_at or delivery.updated_at  # before anything settles it
    if delivery.status == DeliveryStatus.SENDING:
        # the sweep (settle_abandoned) may be settling it right now: wait for its lock and
        # read it again, so one of the two settles it, once
        session.refresh(delivery, with_for_update=True)
    if delivery.status == DeliveryStatus.SENDING:
        if now - delivery.updated_at < grace:
            return StepResult.later(
                Outcome.DEFERRED,
                "another worker may still be sending",
                delivery.updated_at + grace,
                delivery.id,
            )
        _unknown(session, delivery, now)
    advance(session, scenario, journey, journey.step_index, now, previous_at=went_at)
    decision = Outcome.UNKNOWN if delivery.status == DeliveryStatus.UNKNOWN else Outcome.STALE
    return StepResult.moved_on(decision, "step already ran", delivery.id)


def stuck_since(cutoff: datetime) -> tuple[ColumnElement[bool], ...]:
    """Where clause: deliveries left ``sending`` before ``cutoff``."""
    return (Delivery.status == DeliveryStatus.SENDING.value, Delivery.updated_at < cutoff)


def settle_abandoned(
    session: Session, cutoff: datetime, now: datetime, *, limit: int, skip_locked: bool
) -> int:
    """Every delivery left ``sending`` before ``cutoff`` becomes ``unknown``; returns how
    many (at most ``limit``)."""
    query = select(Delivery).where(*stuck_since(cutoff)).order_by(Delivery.updated_at).limit(limit)
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    settled = 0
    for delivery in session.scalars(query):
        _unknown(session, delivery, now)
        settled += 1
    return settled


def _unknown(session: Session, delivery: Delivery, now: datetime) -> None:
    deliveries.mark_unknown(delivery, LEFT_SENDING, now)
    deliveries.look_up_later(session, delivery, now)
    record_for(session, delivery, now, Outcome.UNKNOWN, LEFT_SENDING)
