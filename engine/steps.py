"""Running one journey step (architecture §5) in three short transactions, so that a
crash anywhere loses nothing and sends nothing twice:

A. lock the journey; run every guard (:mod:`cartflow.engine.guards`); compose and check
   the message (:mod:`cartflow.engine.compose`); write the delivery ``pending``.
B. ``pending → sending`` by compare-and-set (:func:`cartflow.engine.deliveries.start_sending`).
C. record the provider's answer, advance the journey, set the next step's timer.

A worker that dies between B and C leaves the delivery ``sending``; when the timer fires
again it becomes ``unknown`` (:mod:`cartflow.engine.recovery`), never sent twice. The run
ends in a :class:`~cartflow.engine.outcomes.StepResult`, from which
:meth:`cartflow.engine.service.Engine.fire` releases the timer, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from cartflow.engine import deliveries, stops, tokens
from cartflow.engine.clock import Clock
from cartflow.engine.compose import check_draft, compose, message_for
from cartflow.engine.configs import ConfigHolder
from cartflow.engine.context import FAILED, build_context
from cartflow.engine.decisions import record, record_failures, record_for
from cartflow.engine.deliveries import SENDING_GRACE, DeliveryStatus
from cartflow.engine.failover import await_receipt, fall_over
from cartflow.engine.guards import StepCheck, Verdict, never_paused, run_guards
from cartflow.engine.journeys import advance, finish
from cartflow.engine.links import Links
from cartflow.engine.locks import keep, lock_for_answer, lock_for_journey
from cartflow.engine.outcomes import Outcome, StepResult
from cartflow.engine.profiles import new_id
from cartflow.engine.recovery import recover
from cartflow.engine.retry import DEFAULT_RETRY, RetryPolicy
from cartflow.engine.scenario.loader import CompiledScenario, Config
from cartflow.engine.sending import Message, Sender, SendResult
from cartflow.engine.signals import apply_provider_signals
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Cart, Delivery, Journey, Profile
from cartflow.engine.timers import DEFAULT_LEASE, Claim, take
from cartflow.engine.timing import format_duration

log = structlog.get_logger("cartflow.steps")


@dataclass(frozen=True)
class Ready:
    """A delivery written in A, to be sent in B."""

    delivery: Delivery
    message: Message
    scenario: CompiledScenario
    journey_started_at: datetime
    shopper: str


@dataclass(frozen=True)
class StepRunner:
    """Runs the step a claimed journey timer is for, with everything it needs."""

    db: Database
    configs: ConfigHolder
    sender: Sender
    clock: Clock
    #: A delivery left ``sending`` this long by a vanished worker becomes ``unknown``.
    sending_grace: timedelta = SENDING_GRACE
    #: How long a worker holds the timer it works on.
    lease: timedelta = DEFAULT_LEASE
    #: Signs links in messages (click tracking, unsubscribe); None: not set up.
    links: Links | None = None

    def run(self, claim: Claim) -> StepResult:
        with self.db.transaction() as session:  # A
            ready = self._prepare(session, claim)
        if isinstance(ready, StepResult):
            return ready
        refused = self._start(ready)  # B
        if refused is not None:
            return refused
        delivery = ready.delivery
        bound = log.bind(**deliveries.log_fields(delivery))
        try:
            result = self.sender.send(ready.message)
        except Exception as exc:  # a provider bug: the request may have left
            bound.exception("provider_crashed")
            result = SendResult.unknown(delivery.provider, f"provider raised {type(exc).__name__}")
        with self.db.transaction() as session:  # C
            return self._settle(session, ready, result, bound)

    def retry_policy(self, channel: str) -> RetryPolicy:
        """The retry policy of the provider that sends ``channel`` now."""
        settings = self.configs.current.settings.providers.get(channel)  # type: ignore[call-overload]
        return settings.retry if settings is not None else DEFAULT_RETRY

    # -- A: guards, compose, write ------------------------------------------------------
    def _prepare(self, session: Session, claim: Claim) -> Ready | StepResult:
        journey = lock_for_journey(session, claim.ref)  # profile → cart → journey
        if not take(session, claim, self.clock.now() + self.lease):
            return StepResult.moved_on(Outcome.STALE, "this firing of the timer is already done")
        if journey is None or journey.status != "active":
            return StepResult.done(Outcome.STALE, "journey is over")
        now = self.clock.now()
        scenario = self.configs.scenario_for(journey)
        if scenario is None:
            finish(session, journey, "exited", f"scenario {journey.scenario} no longer exists", now)
            return StepResult.moved_on(Outcome.EXITED, "scenario removed")
        step = scenario.step(journey.step_index)
        if step is None:
            finish(session, journey, "completed", "all steps done", now)
            return StepResult.moved_on(Outcome.EXITED, "no more steps")
        delivery = deliveries.live(session, journey.id, step.id)
        if delivery is not None and delivery.status != DeliveryStatus.PENDING:
            return recover(session, scenario, journey, delivery, now, self.sending_grace)
        # A new step, or a pending one (a retry, or a crash before sending): either way
        # every guard runs again — quiet hours, consent and exits hold for retries too.
        config = self.configs.config_for(journey)
        decided = self._decide(session, config, scenario, journey, claim, now, delivery)
        if isinstance(decided, StepResult):
            return decided
        message = message_for(session, decided, self.links)
        return Ready(decided, message, scenario, journey.started_at, journey.profile_id)

    def _decide(
        self,
        session: Session,
        config: Config,
        scenario: CompiledScenario,
        journey: Journey,
        claim: Claim,
        now: datetime,
        pending: Delivery | None,
    ) -> Delivery | StepResult:
        step = scenario.step(journey.step_index)
        cart = session.get(Cart, journey.cart_id)  # both locked by lock_for_journey
        profile = session.get(Profile, journey.profile_id)
        assert step is not None and cart is not None and profile is not None
        context = build_context(session, config, profile, cart, now, journey)
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
            live_disabled=self.configs.current.disabled,
            provider_for=self.sender.provider_for,
            paused_for=getattr(self.sender, "paused_for", never_paused),
            links=self.links,
        )
        verdict = run_guards(check)
        if verdict is not None:
            return self._refused(session, scenario, check, verdict, pending)
        if pending is not None:
            return pending  # composed and its code reserved the first time; send it now
        assert check.channel is not None and check.contact is not None
        keep(session, check.contact)  # message_for reads it again
        delivery_id = new_id()
        draft = compose(check, delivery_id)
        verdict = check_draft(draft)
        if verdict is not None:
            tokens.release(session, draft.token.code if draft.token else None)
            return self._refused(session, scenario, check, verdict, None)
        delivery = deliveries.write_pending(
            session,
            delivery_id,
            journey,
            step.id,
            check.channel,
            provider=self.sender.provider_for(check.channel) or "none",
            contact_id=check.contact.id,
            parts=draft.parts,
            variant=draft.variant,
            token_code=draft.token.code if draft.token else None,
            now=now,
        )
        if check.notes:
            record(
                session,
                now,
                Outcome.FALLBACK,
                "; ".join(check.notes),
                journey=journey,
                step_id=step.id,
                channel=check.channel,
            )
        return delivery

    def _refused(
        self,
        session: Session,
        scenario: CompiledScenario,
        check: StepCheck,
        verdict: Verdict,
        pending: Delivery | None,
    ) -> StepResult:
        """A guard said no: record it and say what the timer does."""
        journey, now, reason = check.journey, check.now, verdict.reason
        if pending is not None and verdict.kind != Outcome.DEFERRED:
            deliveries.cancel(session, pending, reason, now)
        if verdict.kind == Outcome.EXITED:
            finish(session, journey, "exited", reason, now)  # deletes the timer
            return StepResult.moved_on(Outcome.EXITED, reason)
        record(
            session,
            now,
            verdict.kind,
            reason,
            until=verdict.until,
            journey=journey,
            step_id=check.step.id,
            channel=check.channel,
        )
        if verdict.kind == Outcome.DEFERRED:
            assert verdict.until is not None
            journey.state = {**(journey.state or {}), "shifted": True}  # it shifts the next step
            return StepResult.later(Outcome.DEFERRED, reason, verdict.until)
        advance(session, scenario, journey, journey.step_index, now)
        return StepResult.moved_on(verdict.kind, reason)

    # -- B: pending → sending -----------------------------------------------------------
    def _start(self, ready: Ready) -> StepResult | None:
        """None when this worker won the right to call the provider."""
        delivery = ready.delivery
        with self.db.transaction() as session:
            now = self.clock.now()
            if deliveries.start_sending(
                session, delivery, ready.journey_started_at, now, profile_id=ready.shopper
            ):
                return None
            channels = (delivery.channel,)
            held = stops.find(
                session, ready.shopper, delivery.cart_id, channels, ready.journey_started_at
            )
            if held:
                # the guards run again shortly and see it applied (or set aside)
                reason, until = held[0].describe(), held[0].recheck_at(now)
                record_for(session, delivery, now, Outcome.DEFERRED, reason, until=until)
                return StepResult.later(Outcome.DEFERRED, reason, until, delivery.id)
        return StepResult.moved_on(Outcome.STALE, "already sent, or no longer wanted", delivery.id)

    # -- C: the answer ------------------------------------------------------------------
    def _settle(
        self, session: Session, ready: Ready, result: SendResult, bound: structlog.BoundLogger
    ) -> StepResult:
        journey = lock_for_answer(session, ready.delivery.journey_id, result.status)
        delivery = session.get(Delivery, ready.delivery.id, with_for_update=True)
        assert journey is not None and delivery is not None
        now = self.clock.now()
        retry_in = None
        if result.status == "retryable":
            policy = self.retry_policy(delivery.channel)
            retry_in = policy.wait_after(delivery.attempts, result.retry_after, delivery.id)
        status = deliveries.settle(session, delivery, result, now, retry_in=retry_in)
        says = f"{result.provider}: {result.reason}"
        if status == DeliveryStatus.PENDING:
            assert retry_in is not None
            waits = f"{says}; retry in {format_duration(retry_in)}"
            record_for(session, delivery, now, Outcome.RETRY, waits)
            return StepResult.later(Outcome.RETRY, result.reason or "", now + retry_in, delivery.id)
        if status == DeliveryStatus.ACCEPTED:
            journey.last_sent_at = now
            state = journey.state or {}
            journey.state = {**state, "sent": state.get("sent", 0) + 1}
            decision, says = Outcome.SENT, f"via {result.provider}"
        elif status == DeliveryStatus.UNKNOWN:
            decision = Outcome.UNKNOWN
        else:
            decision = Outcome.FAILED
            apply_provider_signals(session, delivery, result, now)
            bound.warning("step_failed", provider=result.provider, reason=result.reason)
            over = fall_over(session, ready.scenario, journey, delivery, result, now)
            if over is not None:
                return over
        record_for(session, delivery, now, decision, says)
        waiting = await_receipt(ready.scenario, journey, delivery, now)  # failover_within
        if waiting is not None:
            return waiting
        steps = [s.id for s in ready.scenario.model.steps]
        index = steps.index(delivery.step_id) if delivery.step_id in steps else journey.step_index
        advance(session, ready.scenario, journey, index, now)
        return StepResult.moved_on(decision, result.reason or "", delivery.id)
