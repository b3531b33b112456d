"""Reconciling ``unknown`` sends: asked of the vendor, never resent blindly.

A send whose answer was lost (a read timeout, a 500 on a create that is not idempotent, a
worker gone mid-send) may or may not have reached the shopper. When a delivery becomes
``unknown`` it gets a ``reconcile`` timer
(:func:`cartflow.engine.deliveries.look_up_later`) — the same durable timers as
everything else, so a crash or a restart loses none. When it fires, the provider that
carried the message is asked (:meth:`~cartflow.providers.base.Provider.lookup`, outside any
transaction), and the answer settles the delivery:

* the vendor has it → ``accepted`` (its id kept, the discount code issued, decision
  ``sent``: ``reconciled: …``);
* the vendor refused it → ``failed`` (the code released; its signals applied to the
  profile — an invalid number is never used again);
* the vendor cannot tell yet → asked again: after 1 minute while the send is under
  10 minutes old, every 10 minutes under an hour, then hourly; after a day it is final.

A provider without a lookup (SMTP, FCM, Web Push, Telegram: the vendor keeps nothing to
ask) makes an ``unknown`` send final at once, said once in the decision log. Nothing here
sends: the journey moved on when the send came back ``unknown``, and stays moved on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session

from cartflow.engine import tokens
from cartflow.engine.clock import Clock
from cartflow.engine.decisions import record_for
from cartflow.engine.deliveries import DeliveryEvent, DeliveryStatus, add_event
from cartflow.engine.outcomes import Outcome, StepResult
from cartflow.engine.sending import Sender, SendResult, Sent
from cartflow.engine.signals import apply_provider_signals
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Contact, Delivery
from cartflow.engine.timers import DEFAULT_LEASE, Claim, take

log = structlog.get_logger("cartflow.reconcile")

#: After this long without an answer, an ``unknown`` send is final.
GIVE_UP = timedelta(days=1)


def next_look(age: timedelta) -> timedelta:
    """How long to wait before asking again about a send ``age`` old."""
    if age < timedelta(minutes=10):
        return timedelta(minutes=1)
    if age < timedelta(hours=1):
        return timedelta(minutes=10)
    return timedelta(hours=1)


@dataclass(frozen=True)
class Reconciler:
    """Settles ``unknown`` deliveries from what their vendors say."""

    db: Database
    sender: Sender
    clock: Clock
    lease: timedelta = DEFAULT_LEASE

    def run(self, claim: Claim) -> StepResult:
        with self.db.transaction() as session:
            if not take(session, claim, self.clock.now() + self.lease):
                return StepResult.moved_on(Outcome.STALE, "this firing is already done")
            delivery = session.get(Delivery, claim.ref)
            if delivery is None or delivery.status != DeliveryStatus.UNKNOWN:
                return StepResult.done(Outcome.STALE, "no longer unknown")
            sent = _sent(session, delivery)
            provider = self._provider(delivery.provider)
            if provider is None or not provider.can_look_up():
                why = f"final: {delivery.provider} cannot be asked what became of it"
                record_for(session, delivery, self.clock.now(), Outcome.UNKNOWN, why)
                return StepResult.done(Outcome.UNKNOWN, why, delivery.id)
        try:
            answer = provider.lookup(sent)
        except Exception as exc:  # a provider bug or an outage: ask again later
            log.warning("lookup_failed", provider=provider.name, error=type(exc).__name__)
            answer = None
        with self.db.transaction() as session:
            return self._settle(session, sent, answer)

    def _provider(self, name: str) -> Any:
        named = getattr(self.sender, "named", None)  # routers have it; a bare Sender not
        return named(name) if named is not None else None

    def _settle(self, session: Session, sent: Sent, answer: SendResult | None) -> StepResult:
        now = self.clock.now()
        delivery = session.get(Delivery, sent.delivery_id, with_for_update=True)
        if delivery is None or delivery.status != DeliveryStatus.UNKNOWN:
            return StepResult.done(Outcome.STALE, "settled meanwhile")
        if answer is not None and answer.status == "accepted":
            delivery.status, delivery.error = DeliveryStatus.ACCEPTED.value, None
            delivery.provider_message_id = answer.provider_message_id or sent.provider_message_id
            delivery.sent_at, delivery.updated_at = sent.sent_at, now
            tokens.issue(session, delivery.token_code)
            add_event(session, delivery, DeliveryEvent.ACCEPTED, now, raw="reconciled")
            says = f"reconciled: {answer.provider} has it"
            record_for(session, delivery, now, Outcome.SENT, says)
            return StepResult.done(Outcome.SENT, says, delivery.id)
        if answer is not None and answer.status == "permanent":
            delivery.status, delivery.error = DeliveryStatus.FAILED.value, answer.reason
            delivery.updated_at = now
            tokens.release(session, delivery.token_code)
            add_event(session, delivery, DeliveryEvent.FAILED, now, raw=answer.reason)
            apply_provider_signals(session, delivery, answer, now)
            says = f"reconciled: {answer.provider}: {answer.reason}"
            record_for(session, delivery, now, Outcome.FAILED, says)
            return StepResult.done(Outcome.FAILED, says, delivery.id)
        age = now - sent.sent_at
        if age >= GIVE_UP:
            says = f"final: {delivery.provider} could not tell within a day"
            record_for(session, delivery, now, Outcome.UNKNOWN, says)
            return StepResult.done(Outcome.UNKNOWN, says, delivery.id)
        again = now + next_look(age)
        return StepResult.later(Outcome.UNKNOWN, "vendor cannot tell yet", again, delivery.id)


def _sent(session: Session, delivery: Delivery) -> Sent:
    contact = session.get(Contact, delivery.contact_id) if delivery.contact_id else None
    return Sent(
        delivery_id=delivery.id,
        provider_message_id=delivery.provider_message_id,
        channel=delivery.channel,
        address=contact.address if contact is not None else None,
        sent_at=delivery.updated_at,
        parts={k: v for k, v in (delivery.rendered or {}).items() if isinstance(v, str)},
    )
