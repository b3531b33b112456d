"""Send-time guards: one ordered list of small functions (architecture §5).

Each guard looks at a :class:`StepCheck` and answers ``None`` (go on), or a
:class:`Verdict`: *defer until T*, *skip because R*, *exit because R*. The order is the
policy::

    exit → accepted stops → awaiting support (the shopper replied) → scenario switched off
    → holdout → step condition → escalation → still browsing
    → channel (consent, reachability, a provider, fallback) → window / quiet hours → frequency caps

What the guards let go is composed (:mod:`cartflow.engine.compose`) and meets a second
list on the message itself: render failures, SMS length.

"Accepted stops" are orders, emptied carts and withdrawn consents the API has answered
202 for but the worker has not applied yet (:mod:`cartflow.engine.stops`): they hold the
send as if they were applied. The *when* guards (escalation, browsing, window, caps) are in
:mod:`cartflow.engine.pacing`.

The channel is chosen before the window is checked because quiet hours depend on the
channel (email has none); a closed window defers, it never falls back to another channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select

from cartflow.engine import stops
from cartflow.engine.condition_failures import ConditionKind, Failed, evaluate
from cartflow.engine.failover import tried_channels
from cartflow.engine.outcomes import SUPERSEDED, Outcome
from cartflow.engine.pacing import escalation, frequency_caps, send_window, still_browsing
from cartflow.engine.replies import awaiting_support
from cartflow.engine.step_check import Guard, StepCheck, Verdict, first_verdict, never_paused
from cartflow.engine.store.models import Consent, Contact
from cartflow.engine.timing import format_duration

__all__ = ["GUARDS", "Guard", "StepCheck", "Verdict", "never_paused", "run_guards"]


def exit_conditions(check: StepCheck) -> Verdict | None:
    if check.cart.status == SUPERSEDED:  # a browse cart the shopper's cart took over
        return Verdict(Outcome.EXITED, SUPERSEDED)
    if check.cart.status == "ordered":
        return Verdict(Outcome.EXITED, "order.completed")
    if check.cart.status == "emptied" or not check.cart.items:
        return Verdict(Outcome.EXITED, "cart.emptied")
    expires_at = check.journey.anchor_at + check.scenario.model.expires
    if check.now >= expires_at:
        expires = format_duration(check.scenario.model.expires)
        return Verdict(Outcome.EXITED, f"expired ({expires} after abandonment)")
    return None


def accepted_stops(check: StepCheck) -> Verdict | None:
    """An order or emptied cart accepted but not applied yet defers the step until it is
    (then ``exit_conditions`` ends the journey); one that could not be applied ends it.
    A withdrawn consent not applied yet takes its channel out of the choice."""
    channels = check.step.channels if check.only_channel is None else (check.only_channel,)
    found = stops.find(
        check.session, check.profile.id, check.cart.id, tuple(channels), check.journey.started_at
    )
    for stop in found:
        if stop.channel == stops.ALL:
            if stop.set_aside:
                return Verdict(Outcome.EXITED, stop.describe())
            return Verdict(Outcome.DEFERRED, stop.describe(), until=stop.recheck_at(check.now))
    check.withdrawn = {stop.channel for stop in found}
    return None


def scenario_enabled(check: StepCheck) -> Verdict | None:
    """A marketer who switches a campaign off expects nothing more to go out: journeys in
    flight end at their next step, whatever version they started on."""
    if check.scenario.id in check.live_disabled:
        return Verdict(Outcome.EXITED, "scenario disabled")
    return None


def holdout(check: StepCheck) -> Verdict | None:
    """A journey in the control group sends nothing; each step says so, so the report
    compares it with the treatment group step by step."""
    if check.journey.group == "holdout":
        return Verdict(Outcome.SKIPPED, "holdout (control group): nothing is sent")
    return None


def step_condition(check: StepCheck) -> Verdict | None:
    condition = check.scenario.step_conditions.get(check.step.id)
    if condition is None:
        return None
    holds = evaluate(
        condition,
        check.context,
        kind=ConditionKind.STEP,
        version=check.config.version,
        scenario=check.scenario.id,
        which=check.step.id,
    )
    if isinstance(holds, Failed):  # nothing is sent on what could not be evaluated
        return Verdict(Outcome.SKIPPED, holds.describe())
    return (
        None if holds else Verdict(Outcome.SKIPPED, f"step condition is false ({condition.source})")
    )


def channel_choice(check: StepCheck) -> Verdict | None:
    """Pick the first channel with consent and a valid contact that has not failed at the
    provider for this step (:mod:`cartflow.engine.failover`); record why others lost."""
    channels = check.step.channels if check.only_channel is None else (check.only_channel,)
    tried = tried_channels(check.journey, check.step.id)
    paused: list[float] = []
    for channel in channels:
        if channel in tried:
            check.notes.append(f"{channel}: failed at the provider")
            continue
        wait = check.paused_for(channel)
        if wait is not None:
            paused.append(wait)
            check.notes.append(f"{channel}: provider {check.provider_for(channel)} is failing")
            continue
        if channel in check.withdrawn:
            check.notes.append(f"{channel}: consent withdrawn (accepted, being applied)")
            continue
        consent = check.session.get(Consent, (check.profile.id, channel))
        if consent is None or not consent.granted:
            check.notes.append(f"{channel}: no consent")
            continue
        contact = check.session.scalar(
            select(Contact)
            .where(
                Contact.profile_id == check.profile.id,
                Contact.channel == channel,
                Contact.valid.is_(True),
            )
            .order_by(Contact.updated_at.desc())
            .limit(1)
        )
        if contact is None:
            check.notes.append(f"{channel}: no valid contact")
            continue
        if check.provider_for(channel) is None:
            check.notes.append(f"{channel}: no provider configured")
            continue
        check.channel, check.contact = channel, contact
        return None
    if paused:  # a provider's breaker is open: wait for it, do not burn the step
        until = check.now + timedelta(seconds=min(paused))
        return Verdict(Outcome.DEFERRED, "; ".join(check.notes), until=until)
    return Verdict(
        Outcome.SKIPPED, "no channel with consent and a contact (" + "; ".join(check.notes) + ")"
    )


#: The policy, in order.
GUARDS: Sequence[Guard] = (
    exit_conditions,
    accepted_stops,
    awaiting_support,
    scenario_enabled,
    holdout,
    step_condition,
    escalation,
    still_browsing,
    channel_choice,
    send_window,
    frequency_caps,
)


def run_guards(check: StepCheck, guards: Sequence[Guard] = GUARDS) -> Verdict | None:
    return first_verdict(guards, check)
