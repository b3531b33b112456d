"""Send-time guards: one ordered list of small functions (STYLE §5).

Each guard looks at a :class:`StepCheck` and answers ``None`` (go on), or a
:class:`Verdict`: *defer until T*, *skip because R*, *exit because R*. The order is the
policy::

    exit → accepted stops → scenario switched off → holdout → step condition →
    escalation → still browsing → channel (consent, reachability, a provider, fallback)
    → window / quiet hours → frequency caps

What the guards let go is composed (:mod:`cartflow.engine.compose`) and meets a second
list on the message itself: render failures, SMS length.

"Accepted stops" are orders, emptied carts and withdrawn consents the API has answered
202 for but the worker has not applied yet (:mod:`cartflow.engine.stops`): they hold the send as
if they were applied.

The channel is chosen before the window is checked because quiet hours depend on the
channel (email has none); a closed window defers, it never falls back to another channel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cartflow.engine import stops
from cartflow.engine.condition_failures import ConditionKind, Failed, evaluate
from cartflow.engine.context import recipient_zone
from cartflow.engine.deliveries import at_least
from cartflow.engine.outcomes import Outcome
from cartflow.engine.scenario.loader import CompiledScenario, Config
from cartflow.engine.scenario.model import Step
from cartflow.engine.store.models import (
    Cart,
    Consent,
    Contact,
    Delivery,
    DeliveryEventRow,
    Journey,
    Profile,
)
from cartflow.engine.timing import format_duration

#: Delivery states that count against frequency caps (all but failed before sending).
COUNTED = ("pending", "sending", "accepted", "delivered", "unknown")


@dataclass(frozen=True)
class Verdict:
    """A guard's answer: ``kind`` is one of :data:`~cartflow.engine.outcomes.VERDICTS`
    (``deferred`` comes with ``until``), recorded as the decision of the same name."""

    kind: Outcome
    reason: str
    until: datetime | None = None


@dataclass
class StepCheck:
    session: Session
    config: Config
    scenario: CompiledScenario
    step: Step
    journey: Journey
    cart: Cart
    profile: Profile
    now: datetime
    context: dict[str, Any]
    #: The step's original due time: deferrals never push it past ``max_staleness``.
    due_at: datetime
    #: A retry of a pending delivery stays on its channel ...
    only_channel: str | None = None
    #: ... and does not count against the caps itself.
    own_delivery_id: str | None = None
    channel: str | None = None
    contact: Contact | None = None
    notes: list[str] = field(default_factory=list)
    #: Scenarios the live configuration has switched off (``enabled: false``).
    live_disabled: frozenset[str] = frozenset()
    #: Channels whose consent withdrawal is accepted but not applied yet.
    withdrawn: set[str] = field(default_factory=set)
    #: The provider that would send a channel (None: nobody is configured for it).
    provider_for: Callable[[str], str | None] = lambda channel: None


Guard = Callable[[StepCheck], Verdict | None]


def exit_conditions(check: StepCheck) -> Verdict | None:
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


def escalation(check: StepCheck) -> Verdict | None:
    rule = check.step.escalate
    if rule is None:
        return None
    previous = check.session.scalar(
        select(Delivery)
        .where(
            Delivery.journey_id == check.journey.id,
            Delivery.id != (check.own_delivery_id or ""),  # a retry is not its own "previous"
        )
        .order_by(Delivery.created_at.desc())
        .limit(1)
    )
    if previous is None:
        return None
    engaged_at = check.session.scalar(
        select(func.min(DeliveryEventRow.at)).where(
            DeliveryEventRow.delivery_id == previous.id,
            DeliveryEventRow.status.in_(at_least(rule.unless)),
        )
    )
    if engaged_at is not None:
        return Verdict(Outcome.SKIPPED, f"previous message was {rule.unless}; no need to escalate")
    # the clock starts when the message actually went out (a retry may come later)
    sent_at = previous.sent_at or previous.created_at
    if check.now - sent_at < rule.within:
        return Verdict(
            Outcome.DEFERRED,
            f"waiting {format_duration(rule.within)} for the previous message to be {rule.unless}",
            until=sent_at + rule.within,
        )
    return None


def still_browsing(check: StepCheck) -> Verdict | None:
    grace = check.config.settings.defaults.browsing_grace
    seen = check.profile.last_seen_at
    if seen is not None and check.now - seen < grace and seen > check.journey.started_at:
        return Verdict(Outcome.DEFERRED, "visitor is browsing right now", until=seen + grace)
    return None


def channel_choice(check: StepCheck) -> Verdict | None:
    """Pick the first channel with consent and a valid contact; record why others lost."""
    channels = check.step.channels if check.only_channel is None else (check.only_channel,)
    for channel in channels:
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
    return Verdict(
        Outcome.SKIPPED, "no channel with consent and a contact (" + "; ".join(check.notes) + ")"
    )


def send_window(check: StepCheck) -> Verdict | None:
    assert check.channel is not None
    rules = check.config.send_rules(check.scenario.model, check.step, check.channel)
    zone = recipient_zone(check.session, check.profile, check.config.settings.defaults.timezone)
    if rules.allows(check.now, zone):
        return None
    opening = rules.next_opening(check.now, zone)
    if opening is None:
        return Verdict(Outcome.SKIPPED, "send window never opens in the next 8 days")
    return Verdict(
        Outcome.DEFERRED, f"outside send window / quiet hours in {zone.key}", until=opening
    )


def frequency_caps(check: StepCheck) -> Verdict | None:
    assert check.channel is not None
    latest_until: datetime | None = None
    hit: str | None = None
    for cap in check.config.settings.caps:
        if cap.channel not in ("any", check.channel):
            continue
        since = check.now - cap.per
        query = select(Delivery.created_at).where(
            Delivery.profile_id == check.profile.id,
            Delivery.created_at > since,
            Delivery.status.in_(COUNTED),
        )
        if check.own_delivery_id is not None:
            query = query.where(Delivery.id != check.own_delivery_id)
        if cap.channel != "any":
            query = query.where(Delivery.channel == cap.channel)
        times = sorted(check.session.scalars(query).all())
        if len(times) >= cap.max:
            # room opens when the oldest message that keeps us at the cap leaves the window
            frees_at = times[len(times) - cap.max] + cap.per
            if latest_until is None or frees_at > latest_until:
                latest_until, hit = (
                    frees_at,
                    f"cap {cap.max}/{format_duration(cap.per)} on {cap.channel}",
                )
    if hit is None or latest_until is None:
        return None
    if check.step.on_cap == "skip":
        return Verdict(Outcome.SKIPPED, f"frequency {hit} reached")
    stale_at = check.due_at + check.scenario.model.max_staleness
    if latest_until > stale_at:
        return Verdict(
            Outcome.SKIPPED,
            f"frequency {hit} reached; room opens after max_staleness "
            f"{format_duration(check.scenario.model.max_staleness)}",
        )
    return Verdict(Outcome.DEFERRED, f"frequency {hit} reached", until=latest_until)


#: The policy, in order.
GUARDS: Sequence[Guard] = (
    exit_conditions,
    accepted_stops,
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
    for guard in guards:
        verdict = guard(check)
        if verdict is not None:
            return verdict
    return None


def count_deliveries(session: Session, journey_id: str) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.journey_id == journey_id)
        )
        or 0
    )
