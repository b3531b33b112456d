"""Failover: a step whose channel failed at the provider tries its next channel at once.

A provider's final refusal of a step's message — an invalid push token, a withdrawn
consent, an unroutable number, retries run out — does not end the step while the step
lists a channel it has not tried (``channel`` then ``fallback``, in order). The failed
channel is remembered on the journey (``state["tried"][step_id]``), the step's timer comes
due again now, and the step runs through every guard once more: the channel choice skips
what was tried (and what the provider's signals just made unusable), the window, caps
and accepted stops hold for the fallback as for the first channel.

"Never both channels for one step": a failed delivery is not live, and the database
allows one live delivery per step (:mod:`cartflow.engine.deliveries`); a step whose
delivery was accepted or is ``unknown`` never falls over — except:

**Undelivered within the step's timeout.** A step with ``failover_within`` and a channel
left to try does not move on when its message is accepted: it waits that long for the
provider's receipt (``journey.state["awaiting"]``). A receipt saying the message failed or
cannot be delivered brings the step's timer due at once (:func:`nudge`, from the receipts
endpoint); the delivery becomes ``failed`` (its code released) and the step falls over as
above. A delivered (or opened, clicked) receipt, or the timeout passing, moves the
journey on, its next step counted from the send. A receipt arriving after the step moved
on changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cartflow.engine import deliveries
from cartflow.engine.decisions import record_for
from cartflow.engine.deliveries import ENGAGEMENT, DeliveryEvent, DeliveryStatus
from cartflow.engine.journeys import advance
from cartflow.engine.outcomes import Outcome, StepResult
from cartflow.engine.scenario.loader import CompiledScenario
from cartflow.engine.scenario.model import Step
from cartflow.engine.sending import SendResult
from cartflow.engine.store.models import Delivery, DeliveryEventRow, Journey
from cartflow.engine.timers import JOURNEY_STEP, set_timer

#: The key in ``journey.state`` holding, per step id, the channels that failed there.
TRIED = "tried"
#: The key in ``journey.state`` of the send whose receipt the step waits for.
AWAITING = "awaiting"
#: Receipts that mean the message did not reach the shopper.
NOT_DELIVERED = (DeliveryEvent.FAILED, DeliveryEvent.UNDELIVERABLE)


def tried_channels(journey: Journey, step_id: str) -> tuple[str, ...]:
    """The channels of ``step_id`` that failed at the provider in this journey."""
    tried = (journey.state or {}).get(TRIED) or {}
    return tuple(tried.get(step_id) or ())


def fall_over(
    session: Session,
    scenario: CompiledScenario,
    journey: Journey,
    delivery: Delivery,
    result: SendResult,
    now: datetime,
) -> StepResult | None:
    """After ``delivery`` failed for good: the step's result when it has a channel left
    to try (its timer comes due now), None when it has none (the step is over)."""
    step = _step(scenario, delivery.step_id)
    if step is None or journey.status != "active":
        return None
    tried = (*tried_channels(journey, step.id), delivery.channel)
    left = _left(step, tried)
    if not left:
        return None
    state = dict(journey.state or {})
    state[TRIED] = {**(state.get(TRIED) or {}), step.id: list(tried)}
    journey.state = state
    says = f"{result.provider}: {result.reason}; trying {' then '.join(left)}"
    record_for(session, delivery, now, Outcome.FAILED, says)
    return StepResult.later(Outcome.FALLBACK, result.reason or "", now, delivery.id)


def _left(step: Step, tried: tuple[str, ...]) -> list[str]:
    return [channel for channel in step.channels if channel not in tried]


def _step(scenario: CompiledScenario, step_id: str) -> Step | None:
    return next((s for s in scenario.model.steps if s.id == step_id), None)


def await_receipt(
    scenario: CompiledScenario, journey: Journey, delivery: Delivery, now: datetime
) -> StepResult | None:
    """After ``delivery`` was settled: when it was accepted and its step waits for the
    receipt, the step's result (its timer comes due when the wait ends; the wait is noted
    on the journey). None when it does not wait (not accepted, no ``failover_within``, or
    no channel left to fall over to)."""
    step = _step(scenario, delivery.step_id)
    if delivery.status != DeliveryStatus.ACCEPTED or step is None:
        return None
    if step.failover_within is None:
        return None
    if not _left(step, (*tried_channels(journey, step.id), delivery.channel)):
        return None
    until = now + step.failover_within
    waits = {"delivery": delivery.id, "sent_at": now.isoformat(), "until": until.isoformat()}
    journey.state = {**(journey.state or {}), AWAITING: waits}
    return StepResult.later(Outcome.SENT, "waiting for the receipt", until, delivery.id)


def awaited(session: Session, delivery: Delivery) -> str | None:
    """The journey whose step waits for ``delivery``'s receipt, if one does."""
    state = session.scalar(select(Journey.state).where(Journey.id == delivery.journey_id))
    waits = (state or {}).get(AWAITING) or {}
    return delivery.journey_id if waits.get("delivery") == delivery.id else None


def nudge(session: Session, delivery: Delivery, status: DeliveryEvent, now: datetime) -> bool:
    """A receipt for ``delivery`` came: when its step waits for it and the receipt
    decides the wait, the step's timer comes due now. True when it did."""
    if status not in (*NOT_DELIVERED, *ENGAGEMENT):
        return False
    journey_id = awaited(session, delivery)
    if journey_id is None:
        return False
    set_timer(session, JOURNEY_STEP, journey_id, now)
    return True


def confirm(
    session: Session,
    scenario: CompiledScenario,
    journey: Journey,
    delivery: Delivery,
    now: datetime,
) -> StepResult | None:
    """The step's timer fired while it waits for ``delivery``'s receipt; None when it
    does not wait for this delivery (the caller goes on as for any finished step)."""
    waits = (journey.state or {}).get(AWAITING) or {}
    if waits.get("delivery") != delivery.id or delivery.status != DeliveryStatus.ACCEPTED:
        return None
    sent_at = datetime.fromisoformat(waits["sent_at"])
    until = datetime.fromisoformat(waits["until"])
    heard = dict(
        session.execute(
            select(DeliveryEventRow.status, DeliveryEventRow.raw_status).where(
                DeliveryEventRow.delivery_id == delivery.id
            )
        ).all()
    )
    reached = any(status in heard for status in ENGAGEMENT)
    failed = next((heard[s] for s in NOT_DELIVERED if s in heard), None)
    if failed is None and not reached and now < until:
        return StepResult.later(Outcome.DEFERRED, "waiting for the receipt", until, delivery.id)
    journey.state = {k: v for k, v in (journey.state or {}).items() if k != AWAITING}
    if failed is not None and not reached:
        reason = f"not delivered: {failed}"
        deliveries.undelivered(session, delivery, reason, now)
        over = fall_over(
            session,
            scenario,
            journey,
            delivery,
            SendResult.permanent(delivery.provider, reason),
            now,
        )
        if over is not None:
            return over
    advance(session, scenario, journey, journey.step_index, now, previous_at=sent_at)
    return StepResult.moved_on(Outcome.SENT, "receipt awaited", delivery.id)
