"""The journey state machine: abandonment, entering a scenario, exiting, advancing.

A cart's idle timer fires → if the cart is idle, non-empty, unpaid and the visitor has
not been active for the idle period, the cart is *abandoned* → scenarios are tried in
priority order (trigger condition, audience, exclusion, re-entry cooldown, holdout) →
the first that matches starts a journey and its first step gets a timer.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cartflow.engine import deliveries
from cartflow.engine.condition_failures import ConditionKind, Failed, evaluate
from cartflow.engine.context import FAILED, build_context
from cartflow.engine.decisions import record, record_failures
from cartflow.engine.scenario.loader import CompiledScenario, Config
from cartflow.engine.state import new_id
from cartflow.engine.store.models import Cart, Delivery, Identity, Journey, Profile
from cartflow.engine.timers import CART_IDLE, JOURNEY_STEP, cancel_timer, set_timer
from cartflow.engine.timing import format_duration

#: Exit reasons that end a journey whatever the scenario says: nothing after purchase,
#: nothing about an empty cart, nothing to someone who withdrew every consent.
ALWAYS_EXIT = frozenset({"order.completed", "cart.emptied", "unsubscribed"})


def shortest_idle(config: Config) -> timedelta:
    idles = [s.model.trigger.idle for s in config.scenarios]
    return min(idles) if idles else timedelta(minutes=30)


def on_idle_timer(session: Session, config: Config, cart_id: str, now: datetime) -> datetime | None:
    """The cart's idle timer fired. Returns when to look again (or None: done)."""
    cart = session.get(Cart, cart_id, with_for_update=True)
    if cart is None or cart.status != "active" or not cart.items:
        return None
    profile = session.get(Profile, cart.profile_id)
    assert profile is not None
    quiet_since = max(cart.last_activity_at, profile.last_seen_at or cart.last_activity_at)
    idle_for = now - quiet_since
    eligible = [s for s in config.scenarios if s.model.trigger.idle <= idle_for]
    waiting = sorted(
        s.model.trigger.idle for s in config.scenarios if s.model.trigger.idle > idle_for
    )
    if not eligible:
        shortest = shortest_idle(config)
        return quiet_since + (waiting[0] if waiting else shortest)
    started = try_start(session, config, cart, profile, eligible, now)
    if started is not None:
        cart.status = "abandoned"
        cart.abandoned_at = now
        return None
    return quiet_since + waiting[0] if waiting else None


def try_start(
    session: Session,
    config: Config,
    cart: Cart,
    profile: Profile,
    eligible: list[CompiledScenario],
    now: datetime,
) -> Journey | None:
    active = session.scalar(
        select(Journey.id).where(Journey.cart_id == cart.id, Journey.status == "active")
    )
    if active is not None:
        return None  # a cart is in at most one journey at a time
    context = build_context(session, config, profile, cart, now)
    record_failures(session, now, context[FAILED], profile_id=profile.id, cart_id=cart.id)
    refusals: list[tuple[str, str]] = []
    for scenario in eligible:
        refusal = _refusal(session, config, scenario, profile, context, now)
        if refusal is None:
            return start_journey(session, config, scenario, cart, profile, now)
        reason, failed = refusal
        if failed:  # on record whatever else matches: the configuration needs fixing
            record(
                session,
                now,
                "skipped",
                f"not entered: {reason}",
                profile_id=profile.id,
                cart_id=cart.id,
                scenario=scenario.id,
            )
        else:
            refusals.append((scenario.id, reason))
    # Nothing matched: say why, per scenario ("why didn't she get anything?").
    for scenario_id, reason in refusals:
        record(
            session,
            now,
            "skipped",
            f"not entered: {reason}",
            profile_id=profile.id,
            cart_id=cart.id,
            scenario=scenario_id,
        )
    return None


def _refusal(
    session: Session,
    config: Config,
    scenario: CompiledScenario,
    profile: Profile,
    context: dict[str, object],
    now: datetime,
) -> tuple[str, bool] | None:
    """Why the cart does not enter ``scenario`` and whether a condition failed to
    evaluate; None when it enters. A trigger that fails keeps the cart out; an exclusion
    that fails excludes (fail closed)."""
    model = scenario.model
    at = {"scenario": scenario.id, "version": config.version}
    if scenario.when is not None:
        held = evaluate(scenario.when, context, kind=ConditionKind.TRIGGER, **at)
        if isinstance(held, Failed):
            return held.describe(), True
        if not held:
            return f"trigger condition is false ({model.trigger.when})", False
    segments = context.get("segments")
    assert isinstance(segments, set)
    if model.audience.segments and not segments.intersection(model.audience.segments):
        return f"not in audience segments {list(model.audience.segments)}", False
    if scenario.exclude is not None:
        held = evaluate(scenario.exclude, context, kind=ConditionKind.EXCLUDE, **at)
        if isinstance(held, Failed):
            return f"excluded: {held.describe()}", True
        if held:
            return f"excluded ({model.audience.exclude})", False
    recent = session.scalar(
        select(Journey.started_at)
        .where(
            Journey.profile_id == profile.id,
            Journey.scenario == model.scenario,
            Journey.started_at > now - model.reentry,
            # what counts: a journey that reached the shopper, is still running, or is
            # a control-group journey (the group must stay stable); one that ended before
            # sending anything (emptied, changed cart) does not block a new one
            (Journey.last_sent_at.is_not(None))
            | (Journey.status == "active")
            | (Journey.group == "holdout"),
        )
        .order_by(Journey.started_at.desc())
        .limit(1)
    )
    if recent is not None:
        cooldown = format_duration(model.reentry)
        return f"re-entry cooldown {cooldown} since {recent.isoformat()}", False
    return None


def stable_key(session: Session, profile: Profile) -> str:
    """The shop's own id for the shopper (customer id, else anonymous id): the same
    person lands in the same group on every run and in every mode."""
    rows = dict(
        session.execute(
            select(Identity.kind, Identity.value)
            .where(Identity.profile_id == profile.id)
            .order_by(Identity.created_at, Identity.value)
        ).all()
    )
    return str(rows.get("customer_id") or rows.get("anonymous_id") or profile.id)


def in_holdout(profile_id: str, scenario: str, percent: float) -> bool:
    """Stable control-group assignment: the same shopper is always in or out."""
    if percent <= 0:
        return False
    digest = hashlib.sha256(f"{scenario}:{profile_id}".encode()).digest()
    bucket = int.from_bytes(digest[:4], "big") % 10_000
    return bucket < percent * 100


def start_journey(
    session: Session,
    config: Config,
    scenario: CompiledScenario,
    cart: Cart,
    profile: Profile,
    now: datetime,
) -> Journey:
    model = scenario.model
    holdout = in_holdout(stable_key(session, profile), model.scenario, model.holdout)
    anchor = cart.last_activity_at
    journey = Journey(
        id=new_id(),
        profile_id=profile.id,
        cart_id=cart.id,
        scenario=model.scenario,
        scenario_version=config.version,
        status="active",
        step_index=0,
        anchor_at=anchor,
        started_at=now,
        group="holdout" if holdout else "treatment",
        state={"sent": 0},
    )
    session.add(journey)
    session.flush()
    record(
        session,
        now,
        "started",
        f"cart abandoned; {'holdout (control group)' if holdout else 'treatment'}",
        journey=journey,
    )
    schedule_step(session, scenario, journey, 0, now, previous_at=anchor)
    return journey


def schedule_step(
    session: Session,
    scenario: CompiledScenario,
    journey: Journey,
    index: int,
    now: datetime,
    previous_at: datetime,
) -> datetime | None:
    """Point the journey at step ``index`` and set its timer; ends the journey when there
    is no such step or it falls after the journey's expiry."""
    step = scenario.step(index)
    journey.step_index = index
    if step is None:
        finish(session, journey, "completed", "all steps done", now)
        return None
    expires_at = journey.anchor_at + scenario.model.expires
    shifted = False
    if step.after_previous is not None:
        due = previous_at + step.after_previous  # counts from the actual send already
        shifted = bool((journey.state or {}).get("shifted"))
    else:
        due = journey.anchor_at + (step.after or timedelta(0))
        if index > 0 and (journey.state or {}).get("shifted"):
            # a deferred step shifts what follows: the gap the scenario planned between
            # the two steps is kept from when the previous one actually went (or was
            # skipped) — unless keeping it would pass the journey's expiry. (A step that
            # is merely late — a backlog, events dated in the past — shifts nothing.)
            gap = planned_offset(scenario, index) - planned_offset(scenario, index - 1)
            kept = previous_at + max(gap, timedelta(0))
            if due < kept <= expires_at:
                due, shifted = kept, True
    if due > expires_at:
        finish(
            session,
            journey,
            "exited",
            f"expired before step {step.id} (expires {format_duration(scenario.model.expires)})",
            now,
        )
        return None
    due = max(due, now)
    state = dict(journey.state or {})
    state["due_at"] = due.isoformat()
    # a step moved by its predecessor's deferral moves the next one in turn
    state["shifted"] = shifted
    journey.state = state
    set_timer(session, JOURNEY_STEP, journey.id, due)
    return due


def planned_offset(scenario: CompiledScenario, index: int) -> timedelta:
    """When step ``index`` is planned, counted from abandonment, if nothing is deferred."""
    offset = timedelta(0)
    for step in scenario.model.steps[: index + 1]:
        if step.after_previous is not None:
            offset += step.after_previous
        else:
            offset = step.after or timedelta(0)
    return offset


def finish(session: Session, journey: Journey, status: str, reason: str, now: datetime) -> None:
    if journey.status != "active":
        return
    journey.status = status
    journey.exit_reason = reason
    journey.ended_at = now
    cancel_timer(session, JOURNEY_STEP, journey.id)
    # a message written but not yet handed to a provider will not go now
    for delivery in session.scalars(
        select(Delivery).where(Delivery.journey_id == journey.id, Delivery.status == "pending")
    ):
        deliveries.cancel(session, delivery, reason, now)  # its code goes back
    record(session, now, "exited" if status == "exited" else "completed", reason, journey=journey)


def on_exit_signal(
    session: Session, config_for: object, cart_id: str, reason: str, now: datetime, idle: timedelta
) -> None:
    """A state change that may end the cart's journey (order, emptied, unsubscribed, updated)."""
    journey = session.scalar(
        select(Journey)
        .where(Journey.cart_id == cart_id, Journey.status == "active")
        .with_for_update()
    )
    cart = session.get(Cart, cart_id)
    if journey is None:
        if reason == "cart.updated" and cart is not None and cart.status == "abandoned":
            cart.status = "active"
            set_timer(session, CART_IDLE, cart.id, cart.last_activity_at + idle)
        return
    if reason not in ALWAYS_EXIT:
        scenario = config_for(journey)  # type: ignore[operator]
        if scenario is None or reason not in scenario.model.exit_on:
            return
        if cart is not None and cart.status == "abandoned":
            cart.status = "active"
            set_timer(session, CART_IDLE, cart.id, cart.last_activity_at + idle)
    finish(session, journey, "exited", reason, now)
