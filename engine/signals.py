"""What a provider's answer says about the shopper, applied to the profile at once
(architecture §5): a refusal because consent was withdrawn (an SMS ``STOP``, a blocked
bot) withdraws it on that channel; an invalid number or address is never used again.
The provider clients say which (:class:`~cartflow.engine.sending.SendResult`'s
``consent_withdrawn`` and ``invalid_contact``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from cartflow.engine.deliveries import DeliveryEvent
from cartflow.engine.profiles import set_consent
from cartflow.engine.receipts import Receipt
from cartflow.engine.sending import SendResult
from cartflow.engine.store.models import Contact, Delivery

#: Receipts that withdraw the channel's consent: an unsubscribe (a list-unsubscribe, a
#: vendor's suppression) or a spam complaint.
WITHDRAWS = (DeliveryEvent.UNSUBSCRIBED, DeliveryEvent.COMPLAINED)


def apply_provider_signals(
    session: Session, delivery: Delivery, result: SendResult, now: datetime
) -> None:
    """Apply what the refusal of ``delivery`` says about its shopper."""
    if result.consent_withdrawn:
        source = f"provider:{result.provider}:{delivery.id}"
        said = f"{delivery.channel} provider refused: {result.reason or 'consent withdrawn'}"
        set_consent(
            session, delivery.profile_id, delivery.channel, False, source, now, evidence=said
        )
    if result.invalid_contact and delivery.contact_id:
        contact = session.get(Contact, delivery.contact_id)
        if contact is not None:
            contact.valid, contact.invalid_reason = False, (result.reason or "")[:200]


def apply_receipt_signals(
    session: Session, delivery: Delivery, receipt: Receipt, now: datetime
) -> None:
    """Apply what a receipt about ``delivery`` says about its shopper: the contact it
    went to cannot be delivered to (never used again), or the shopper unsubscribed or
    complained (consent on that channel withdrawn)."""
    if receipt.status in WITHDRAWS:
        source = f"provider:{receipt.provider}:{delivery.id}:{receipt.status.value}"
        said = f"{delivery.channel} receipt: {receipt.status.value}"
        set_consent(
            session, delivery.profile_id, delivery.channel, False, source, now, evidence=said
        )
    elif receipt.status == DeliveryEvent.UNDELIVERABLE and delivery.contact_id:
        contact = session.get(Contact, delivery.contact_id)
        if contact is not None:
            contact.valid = False
            contact.invalid_reason = f"{receipt.provider}: {receipt.reason or 'undeliverable'}"[
                :200
            ]
