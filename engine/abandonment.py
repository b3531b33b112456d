"""How an abandoned cart enters a scenario (architecture §3).

A cart's idle timer fires → if the cart is idle, non-empty, unpaid and the visitor has
not been active for the idle period, the cart is *abandoned* → scenarios are tried in
priority order (trigger condition, audience, exclusion, re-entry cooldown, holdout) →
the first that matches starts a journey (:func:`cartflow.engine.journeys.start_journey`)
and its first step gets a timer. Every scenario that did not match says why.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from cartflow.engine.browse_abandonment import BROWSE, has_open_cart, supersede
from cartflow.engine.condition_failures import ConditionKind, Failed, evaluate
from cartflow.engine.context import FAILED, build_context
from cartflow.engine.decisions import record, record_failures
from cartflow.engine.intent import SAME_INTENT, running_same_intent
from cartflow.engine.journeys import start_journey
from cartflow.engine.outcomes import Outcome
from cartflow.engine.scenario.loader import CompiledScenario, Config
from cartflow.engine.store.models import Cart, Journey, Profile
from cartflow.engine.timing import format_duration

#: The trigger of browse abandonment.
BROWSE_ON = "browse.abandoned"


def shortest_idle(config: Config) -> timedelta:
    """When a cart's idle timer first looks: the shortest idle of the cart triggers (a
    browse cart looks then too, and waits for its own scenarios' idle from there)."""
    idles = [s.model.trigger.idle for s in config.scenarios if s.model.trigger.on != BROWSE_ON]
    return min(idles) if idles else timedelta(minutes=30)


def on_idle_timer(session: Session, config: Config, cart_id: str, now: datetime) -> datetime | None:
    """The cart's idle timer fired. Returns when to look again (or None: done). The
    caller holds the cart's lock (:func:`cartflow.engine.locks.lock_for_cart`)."""
    cart = session.get(Cart, cart_id)  # loaded and locked by the caller
    if cart is None or cart.status != "active" or not cart.items:
        return None
    profile = session.get(Profile, cart.profile_id)
    assert profile is not None
    quiet_since = max(cart.last_activity_at, profile.last_seen_at or cart.last_activity_at)
    idle_for = now - quiet_since
    if cart.kind == BROWSE and has_open_cart(session, cart.profile_id):
        supersede(session, cart.profile_id, now)  # carted since: no browse journey
        return None
    fitting = [
        s for s in config.scenarios if s.model.trigger.applies_to(cart.checkout_step, cart.kind)
    ]
    eligible = [s for s in fitting if s.model.trigger.idle <= idle_for]
    waiting = sorted(s.model.trigger.idle for s in fitting if s.model.trigger.idle > idle_for)
    if not fitting:
        return None  # no scenario for this cart (e.g. only checkout ones, never in checkout)
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
    joined = running_same_intent(session, cart)
    if joined is not None:  # one person, one journey per intent (engine/intent.py)
        record(
            session,
            now,
            Outcome.SKIPPED,
            f"{SAME_INTENT}: journey {joined.id} runs for the same items (cart {joined.cart_id})",
            profile_id=profile.id,
            cart_id=cart.id,
            journey_id=joined.id,
        )
        return None
    context = build_context(session, config, profile, cart, now)
    record_failures(session, now, context[FAILED], profile_id=profile.id, cart_id=cart.id)
    refusals: list[tuple[str, str]] = []
    for scenario in eligible:
        refusal = _refusal(session, config, scenario, profile, context, now)
        if refusal is None:
            if cart.kind != BROWSE:
                supersede(session, profile.id, now)  # a cart journey beats a browse one
            return start_journey(session, config, scenario, cart, profile, now)
        reason, failed = refusal
        if failed:  # on record whatever else matches: the configuration needs fixing
            _not_entered(session, now, profile, cart, scenario.id, reason)
        else:
            refusals.append((scenario.id, reason))
    # Nothing matched: say why, per scenario ("why didn't she get anything?").
    for scenario_id, reason in refusals:
        _not_entered(session, now, profile, cart, scenario_id, reason)
    return None


def _not_entered(
    session: Session, now: datetime, profile: Profile, cart: Cart, scenario_id: str, reason: str
) -> None:
    record(
        session,
        now,
        Outcome.SKIPPED,
        f"not entered: {reason}",
        profile_id=profile.id,
        cart_id=cart.id,
        scenario=scenario_id,
    )


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
