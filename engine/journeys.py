"""The journey state machine: starting, advancing from step to step, exiting.

A journey is one cart in one scenario (how it gets there: :mod:`cartflow.engine.abandonment`).
It points at its current step, whose timer fires the step (:mod:`cartflow.engine.steps`);
:func:`schedule_step` moves it on, :func:`finish` ends it — at the last step, at expiry, or
on an exit signal (an order, an emptied cart, an unsubscribe, or the scenario's ``exit_on``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cartflow.engine import deliveries
from cartflow.engine.decisions import record
from cartflow.engine.outcomes import SUPERSEDED, Outcome
from cartflow.engine.profiles import new_id
from cartflow.engine.scenario.loader import CompiledScenario, Config
from cartflow.engine.store.models import Cart, Delivery, Identity, Journey, Profile
from cartflow.engine.timers import CART_IDLE, JOURNEY_STEP, cancel_timer, set_timer
from cartflow.engine.timing import format_duration

#: Exit reasons that end a journey whatever the scenario says: nothing after purchase,
#: nothing about an empty cart, nothing to someone who withdrew every consent.
#: A browse journey that a cart took over ends too (``superseded``).
ALWAYS_EXIT = frozenset({"order.completed", "cart.emptied", "unsubscribed", SUPERSEDED})


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
    session.add(journey)  # written with its first step's state (the timer's autoflush)
    record(
        session,
        now,
        Outcome.STARTED,
        f"{'browsing' if cart.kind == 'browse' else 'cart'} abandoned; "
        f"{'holdout (control group)' if holdout else 'treatment'}",
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


def advance(
    session: Session,
    scenario: CompiledScenario,
    journey: Journey,
    from_index: int,
    now: datetime,
    previous_at: datetime | None = None,
) -> None:
    """Move from step ``from_index`` to the next, once (compare-and-set on the step index),
    and set its timer; its delays count from ``previous_at``, when this one went (default:
    now)."""
    if journey.step_index != from_index or journey.status != "active":
        return
    schedule_step(session, scenario, journey, from_index + 1, now, previous_at=previous_at or now)


def planned_offset(scenario: CompiledScenario, index: int) -> timedelta:
    """When step ``index`` is planned, counted from abandonment, if nothing is deferred."""
    offset = timedelta(0)
    for step in scenario.model.steps[: index + 1]:
        if step.after_previous is not None:
            offset += step.after_previous
        else:
            offset = step.after or timedelta(0)
    return offset


def finish(
    session: Session,
    journey: Journey,
    status: str,
    reason: str,
    now: datetime,
    *,
    detail: str | None = None,
) -> None:
    """End the journey with ``reason`` (its ``exit_reason``); the decision says ``detail``
    when given (e.g. which other journey it joined), else the reason."""
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
    decision = Outcome.EXITED if status == "exited" else Outcome.COMPLETED
    record(session, now, decision, detail or reason, journey=journey)


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
