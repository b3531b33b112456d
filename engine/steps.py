"""Running one journey step: guards, then the delivery row, then the provider.

Three short transactions, so that a crash anywhere loses nothing and sends nothing twice:

A. lock the journey; re-check every guard; reserve the token, render, and write the
   delivery as ``pending`` under its unique idempotency key (journey + step). Exit
   conditions are checked in this same transaction.
B. ``pending → sending`` as a compare-and-set: of two workers that got here, one wins.
C. record the provider's answer, advance the journey (also compare-and-set on the step
   index), move the timer to the next step.

If the worker dies between B and C the timer's lease runs out and the step runs again: it
finds the delivery ``sending`` and marks it ``unknown`` (to be reconciled with the
provider), never sending it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cartflow.engine import stops
from cartflow.engine.context import FAILED, build_context
from cartflow.engine.decisions import record, record_failures, record_for
from cartflow.engine.deliveries import NOT_LIVE, DeliveryEvent, add_event, delivery_key
from cartflow.engine.guards import StepCheck, run_guards
from cartflow.engine.journeys import finish, schedule_step
from cartflow.engine.locks import lock_for_journey
from cartflow.engine.render import RenderError, SmsShape
from cartflow.engine.scenario.loader import CompiledScenario, Config
from cartflow.engine.sending import Message, Sender, SendResult
from cartflow.engine.state import new_id
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Cart, Contact, Delivery, DiscountToken, Journey, Profile
from cartflow.engine.timers import DEFAULT_LEASE, Claim, release, take
from cartflow.engine.timing import format_duration
from cartflow.engine.tokens import reserve, view

log = structlog.get_logger("cartflow.steps")

#: How many times a step is retried after a retryable provider failure.
MAX_ATTEMPTS = 3
#: Wait before retrying when the provider did not say.
DEFAULT_RETRY_AFTER = timedelta(minutes=5)
#: A delivery left ``sending`` longer than this by a dead worker becomes ``unknown``.
SENDING_GRACE = timedelta(seconds=30)
#: Why such a delivery is ``unknown``.
LEFT_SENDING = "worker stopped after the request may have left; reconcile, do not resend"


@dataclass(frozen=True)
class Outcome:
    """What happened to a step run (for simulate and tests)."""

    decision: str  # sent | deferred | skipped | exited | retry | stale | unknown | failed
    reason: str = ""
    delivery_id: str | None = None


def run_step(
    db: Database,
    configs: Any,
    sender: Sender,
    claim: Claim,
    now_fn: Any,
    sending_grace: timedelta = SENDING_GRACE,
    lease: timedelta = DEFAULT_LEASE,
) -> Outcome:
    """Run the step the journey ``claim.ref`` is waiting on."""
    journey_id = claim.ref
    with db.transaction() as session:
        journey = lock_for_journey(session, journey_id)  # profile → cart → journey
        if not take(session, claim, now_fn() + lease):
            return Outcome("stale", "this firing of the timer is already done")
        if journey is None or journey.status != "active":
            release(session, claim, None)
            return Outcome("stale", "journey is over")
        now = now_fn()
        scenario = configs.scenario_for(journey)
        if scenario is None:
            finish(session, journey, "exited", f"scenario {journey.scenario} no longer exists", now)
            release(session, claim, None)
            return Outcome("exited", "scenario removed")
        config = configs.config_for(journey)
        index = journey.step_index
        step = scenario.step(index)
        if step is None:
            finish(session, journey, "completed", "all steps done", now)
            release(session, claim, None)
            return Outcome("exited", "no more steps")
        delivery = session.scalar(
            select(Delivery).where(
                Delivery.journey_id == journey.id,
                Delivery.step_id == step.id,
                Delivery.status.not_in(NOT_LIVE),
            )
        )
        if delivery is not None and delivery.status != "pending":
            return _recover(session, scenario, journey, delivery, claim, now, sending_grace)
        # A new step, or a pending one (a retry, or a crash before sending): either way
        # every guard runs again — quiet hours, consent and exits hold for retries too.
        outcome = _decide(
            session,
            config,
            scenario,
            journey,
            claim,
            now,
            sender,
            delivery,
            live_disabled=configs.current.disabled,
        )
        if isinstance(outcome, Outcome):
            return outcome
        delivery = outcome
        message = _message(session, delivery)

    # B: pending → sending, exactly one winner
    started_at, shopper = journey.started_at, journey.profile_id
    with db.transaction() as session:
        won = start_sending(session, delivery, started_at, now_fn(), profile_id=shopper)
        if not won:
            held = stops.find(session, shopper, delivery.cart_id, (delivery.channel,), started_at)
            if held:
                # the guards run again shortly and see it applied (or set aside)
                now = now_fn()
                reason, until = held[0].describe(), held[0].recheck_at(now)
                record_for(session, delivery, now, "deferred", reason, until=until)
                release(session, claim, until)
                return Outcome("deferred", reason, delivery.id)
    if not won:
        return Outcome("stale", "already sent, or no longer wanted", delivery.id)

    bound = log.bind(
        journey_id=journey_id,
        cart_id=delivery.cart_id,
        step=delivery.step_id,
        channel=delivery.channel,
        delivery_id=delivery.id,
    )
    try:
        result = sender.send(message)
    except Exception as exc:  # a provider bug: the request may have left
        bound.exception("provider_crashed")
        result = SendResult.unknown(delivery.provider, f"provider raised {type(exc).__name__}")

    # C: outcome, advance, next timer
    with db.transaction() as session:
        return _settle(
            session, configs, scenario, journey_id, delivery.id, result, claim, now_fn(), bound
        )


def start_sending(
    session: Session,
    delivery: Delivery,
    journey_started_at: datetime,
    now: datetime,
    *,
    profile_id: str | None = None,
) -> bool:
    """``pending → sending`` as a compare-and-set: True for the one caller that may call
    the provider. Only while the journey still runs, the cart is unpaid and no order,
    emptied cart or withdrawn consent on this channel has been *accepted* — applied or
    not (:mod:`cartflow.engine.stops`): an order stored after the guards ran still stops it."""
    still_wanted = (
        exists(
            select(Journey.id).where(Journey.id == delivery.journey_id, Journey.status == "active")
        )
        & ~exists(
            select(Cart.id).where(
                Cart.id == delivery.cart_id, Cart.status.in_(("ordered", "emptied"))
            )
        )
        & stops.none_matching(
            profile_id or delivery.profile_id,  # the journey's shopper (merges move it)
            delivery.cart_id,
            delivery.channel,
            journey_started_at,
        )
    )
    won = session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id, Delivery.status == "pending", still_wanted)
        .values(status="sending", attempts=Delivery.attempts + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return bool(won)


def _decide(
    session: Session,
    config: Config,
    scenario: CompiledScenario,
    journey: Journey,
    claim: Claim,
    now: datetime,
    sender: Sender,
    pending: Delivery | None = None,
    *,
    live_disabled: frozenset[str] = frozenset(),
) -> Delivery | Outcome:
    step = scenario.step(journey.step_index)
    assert step is not None
    cart = session.get(Cart, journey.cart_id, with_for_update=True)
    profile = session.get(Profile, journey.profile_id)
    assert cart is not None and profile is not None
    context = build_context(session, config, profile, cart, now, journey)
    context["_provider_for"] = sender.provider_for
    condition = scenario.step_conditions.get(step.id)
    if condition is not None and "segments" in condition.names:  # the failure decides it
        record_failures(session, now, context[FAILED], journey=journey, step_id=step.id)
    due_at = datetime.fromisoformat(
        (journey.state or {}).get("due_at") or claim.scheduled_for.isoformat()
    )
    check = StepCheck(
        session=session,
        config=config,
        scenario=scenario,
        step=step,
        journey=journey,
        cart=cart,
        profile=profile,
        now=now,
        context=context,
        due_at=due_at,
        only_channel=pending.channel if pending is not None else None,
        own_delivery_id=pending.id if pending is not None else None,
        live_disabled=live_disabled,
    )
    if journey.group == "holdout" and journey.scenario not in live_disabled:
        verdict_kind, reason = "skip", "holdout (control group): nothing is sent"
        until = None
    else:
        verdict = run_guards(check)
        verdict_kind = verdict.kind if verdict else "go"
        reason = verdict.reason if verdict else ""
        until = verdict.until if verdict else None
    common: dict[str, Any] = {"journey": journey, "step_id": step.id, "channel": check.channel}
    if pending is not None and verdict_kind in ("exit", "skip"):
        _cancel(session, pending, reason, now)
    if verdict_kind == "exit":
        finish(session, journey, "exited", reason, now)
        release(session, claim, None)
        return Outcome("exited", reason)
    if verdict_kind == "defer":
        assert until is not None
        record(session, now, "deferred", reason, until=until, **common)
        journey.state = {**(journey.state or {}), "shifted": True}  # it shifts the next step
        release(session, claim, until)
        return Outcome("deferred", reason)
    if verdict_kind == "skip":
        record(session, now, "skipped", reason, **common)
        _advance(session, scenario, journey, journey.step_index, now)
        release_after_advance(session, claim, journey)
        return Outcome("skipped", reason)

    if pending is not None:
        return pending  # rendered and token reserved the first time; send it now
    # go: choose the variant, reserve the token, render, write the delivery
    assert check.channel is not None and check.contact is not None
    variant = _variant(step, journey)
    token = None
    if step.discount is not None:
        token = reserve(
            session,
            step.discount,
            journey_id=journey.id,
            step_id=step.id,
            currency=cart.currency,
            now=now,
        )
    defaults = config.settings.defaults
    locale = scenario.model.locale_for(profile.locale, defaults.locale)
    render_context = {k: v for k, v in context.items() if not k.startswith("_")}
    render_context.update(
        discount=view(token),
        step={"id": step.id, "channel": check.channel},
        links={"cart": cart.url},
    )
    ref = step.template_for(check.channel, variant)
    assert ref is not None  # the loader makes sure every channel of the step has one
    try:
        parts = config.templates.render(
            ref,
            check.channel,
            locale,
            render_context,
            scenario.model.default_locale(defaults.locale),
        )
    except RenderError as exc:
        if token is not None:
            token.status = "released"
        record(session, now, "skipped", f"render failed: {exc}", **common)
        _advance(session, scenario, journey, journey.step_index, now)
        release_after_advance(session, claim, journey)
        return Outcome("skipped", f"render failed: {exc}")
    if check.channel == "sms":
        shape = SmsShape.of(parts["text"])
        parts.update(encoding=shape.encoding, segments=str(shape.parts))
        if shape.parts > step.max_sms_parts:
            if token is not None:
                token.status = "released"
            reason = (
                f"SMS needs {shape.parts} parts ({shape.encoding}); "
                f"step allows {step.max_sms_parts}"
            )
            record(session, now, "skipped", reason, **common)
            _advance(session, scenario, journey, journey.step_index, now)
            release_after_advance(session, claim, journey)
            return Outcome("skipped", reason)
    delivery = Delivery(
        id=new_id(),
        idempotency_key=delivery_key(journey.id, step.id, _attempt(session, journey, step.id)),
        journey_id=journey.id,
        profile_id=journey.profile_id,
        cart_id=journey.cart_id,
        scenario=journey.scenario,
        step_id=step.id,
        channel=check.channel,
        provider=sender.provider_for(check.channel) or "none",
        variant=variant,
        contact_id=check.contact.id,
        status="pending",
        token_code=token.code if token else None,
        rendered=parts,
        created_at=now,
        updated_at=now,
    )
    if token is not None:
        token.delivery_id = delivery.id
    session.add(delivery)
    try:
        session.flush()
    except IntegrityError:  # pragma: no cover - the journey lock makes this unreachable on PG
        raise
    if check.notes:
        record(session, now, "fallback", "; ".join(check.notes), **common)
    return delivery


def _attempt(session: Session, journey: Journey, step_id: str) -> int:
    """Which delivery of this step this is: 1, or more after a failed one (failover)."""
    earlier = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.journey_id == journey.id, Delivery.step_id == step_id)
    )
    return int(earlier or 0) + 1


def _cancel(session: Session, delivery: Delivery, reason: str, now: datetime) -> None:
    """A pending delivery that will not go after all (its token goes back)."""
    delivery.status, delivery.error, delivery.updated_at = "cancelled", reason[:500], now
    if delivery.token_code:
        token = session.get(DiscountToken, delivery.token_code)
        if token is not None and token.status == "reserved":
            token.status = "released"


def _variant(step: Any, journey: Journey) -> str | None:
    if not step.variants:
        return None
    import hashlib

    total = sum(v.weight for v in step.variants) or 1
    # keyed on the shop's cart id: the same cart gets the same variant in every mode
    seed = f"{journey.cart_id}:{journey.scenario}:{step.id}".encode()
    bucket = int.from_bytes(hashlib.sha256(seed).digest()[:4], "big") % total
    for variant in step.variants:
        if bucket < variant.weight:
            return str(variant.id)
        bucket -= variant.weight
    return str(step.variants[-1].id)


def _message(session: Session, delivery: Delivery) -> Message:
    contact = session.get(Contact, delivery.contact_id) if delivery.contact_id else None
    profile = session.get(Profile, delivery.profile_id)
    return Message(
        delivery_id=delivery.id,
        idempotency_key=delivery.idempotency_key,
        channel=delivery.channel,
        address=contact.address if contact else "",
        parts=dict(delivery.rendered or {}),
        locale=(profile.locale if profile else None) or "en",
        metadata={
            "cartflow_delivery_id": delivery.id,
            "journey_id": delivery.journey_id,
            "cart_id": delivery.cart_id,
            "scenario": delivery.scenario,
            "step": delivery.step_id,
            "token": delivery.token_code,
        },
    )


def _advance(
    session: Session,
    scenario: CompiledScenario,
    journey: Journey,
    from_index: int,
    now: datetime,
    previous_at: datetime | None = None,
) -> None:
    """Move to the next step once (compare-and-set on the step index); the next step's
    delays count from ``previous_at``, when this one went (default: now)."""
    if journey.step_index != from_index or journey.status != "active":
        return
    schedule_step(session, scenario, journey, from_index + 1, now, previous_at=previous_at or now)


def release_after_advance(session: Session, claim: Claim, journey: Journey) -> None:
    """The claim is done: schedule_step already moved (or deleted) the timer row itself,
    which cleared the claim token; nothing else to do."""
    del session, claim, journey


def _recover(
    session: Session,
    scenario: CompiledScenario,
    journey: Journey,
    delivery: Delivery,
    claim: Claim,
    now: datetime,
    grace: timedelta,
) -> Outcome:
    """The step ran before and got past writing its delivery."""
    went_at = delivery.sent_at or delivery.updated_at  # before this recovery touches it
    if delivery.status == "sending":
        if now - delivery.updated_at < grace:
            release(session, claim, delivery.updated_at + grace)
            return Outcome("deferred", "another worker may still be sending", delivery.id)
        delivery.status = "unknown"
        delivery.error = LEFT_SENDING
        delivery.updated_at = now
        record(
            session,
            now,
            "unknown",
            delivery.error,
            journey=journey,
            step_id=delivery.step_id,
            channel=delivery.channel,
            delivery_id=delivery.id,
        )
    _advance(session, scenario, journey, journey.step_index, now, previous_at=went_at)
    if journey.status != "active":
        release(session, claim, None)
    return Outcome(
        "unknown" if delivery.status == "unknown" else "stale", "step already ran", delivery.id
    )


def _settle(
    session: Session,
    configs: Any,
    scenario: CompiledScenario,
    journey_id: str,
    delivery_id: str,
    result: SendResult,
    claim: Claim,
    now: datetime,
    bound: Any,
) -> Outcome:
    journey = lock_for_journey(session, journey_id)
    delivery = session.get(Delivery, delivery_id, with_for_update=True)
    assert journey is not None and delivery is not None
    token = session.get(DiscountToken, delivery.token_code) if delivery.token_code else None
    delivery.provider = result.provider
    delivery.updated_at = now
    common: dict[str, Any] = {
        "journey": journey,
        "step_id": delivery.step_id,
        "channel": delivery.channel,
        "delivery_id": delivery.id,
    }
    index = next(
        (i for i, s in enumerate(scenario.model.steps) if s.id == delivery.step_id),
        journey.step_index,
    )
    if result.status == "retryable" and delivery.attempts < MAX_ATTEMPTS:
        delivery.status = "pending"
        delivery.error = result.reason
        wait = timedelta(seconds=result.retry_after) if result.retry_after else DEFAULT_RETRY_AFTER
        record(
            session,
            now,
            "retry",
            f"{result.provider}: {result.reason}; retry in {format_duration(wait)}",
            **common,
        )
        release(session, claim, now + wait)
        return Outcome("retry", result.reason or "", delivery.id)
    if result.status == "accepted":
        delivery.status = "accepted"
        delivery.sent_at = now
        delivery.provider_message_id = result.provider_message_id
        delivery.error = None
        journey.last_sent_at = now
        journey.state = {**(journey.state or {}), "sent": (journey.state or {}).get("sent", 0) + 1}
        if token is not None:
            token.status = "issued"
        record(session, now, "sent", f"via {result.provider}", **common)
        add_event(session, delivery, DeliveryEvent.ACCEPTED, now, raw=result.provider)
        decision = "sent"
    elif result.status == "unknown":
        delivery.status = "unknown"
        delivery.error = result.reason
        record(session, now, "unknown", f"{result.provider}: {result.reason}", **common)
        decision = "unknown"
    else:
        delivery.status = "failed"
        delivery.error = result.reason
        if token is not None:
            token.status = "released"
        if result.consent_withdrawn:
            from cartflow.engine.state import set_consent

            set_consent(
                session,
                delivery.profile_id,
                delivery.channel,
                False,
                f"provider:{result.provider}:{delivery.id}",
                now,
            )
        if result.invalid_contact and delivery.contact_id:
            contact = session.get(Contact, delivery.contact_id)
            if contact is not None:
                contact.valid, contact.invalid_reason = False, (result.reason or "")[:200]
        record(session, now, "failed", f"{result.provider}: {result.reason}", **common)
        add_event(session, delivery, DeliveryEvent.FAILED, now, raw=result.reason)
        bound.warning("step_failed", provider=result.provider, reason=result.reason)
        decision = "failed"
    _advance(session, scenario, journey, index, now)
    return Outcome(decision, result.reason or "", delivery.id)
