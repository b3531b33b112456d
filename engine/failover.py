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
delivery was accepted or is ``unknown`` never falls over.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from cartflow.engine.decisions import record_for
from cartflow.engine.outcomes import Outcome, StepResult
from cartflow.engine.scenario.loader import CompiledScenario
from cartflow.engine.sending import SendResult
from cartflow.engine.store.models import Delivery, Journey

#: The key in ``journey.state`` holding, per step id, the channels that failed there.
TRIED = "tried"


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
    step = next((s for s in scenario.model.steps if s.id == delivery.step_id), None)
    if step is None or journey.status != "active":
        return None
    tried = (*tried_channels(journey, step.id), delivery.channel)
    left = [channel for channel in step.channels if channel not in tried]
    if not left:
        return None
    state = dict(journey.state or {})
    state[TRIED] = {**(state.get(TRIED) or {}), step.id: list(tried)}
    journey.state = state
    says = f"{result.provider}: {result.reason}; trying {' then '.join(left)}"
    record_for(session, delivery, now, Outcome.FAILED, says)
    return StepResult.later(Outcome.FALLBACK, result.reason or "", now, delivery.id)
