"""What a provider's answer says about the shopper, applied to the profile at once
(architecture §5): a refusal because consent was withdrawn (an SMS ``STOP``, a blocked
bot) withdraws it on that channel; an invalid number or address is never used again.
The provider clients say which (:class:`~cartflow.engine.sending.SendResult`'s
``consent_withdrawn`` and ``invalid_contact``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from cartflow.engine.sending import SendResult
from cartflow.engine.state import set_consent
from cartflow.engine.store.models import Contact, Delivery


def apply_provider_signals(
    session: Session, delivery: Delivery, result: SendResult, now: datetime
) -> None:
    """Apply what the refusal of ``delivery`` says about its shopper."""
    if result.consent_withdrawn:
        source = f"provider:{result.provider}:{delivery.id}"
        set_consent(session, delivery.profile_id, delivery.channel, False, source, now)
    if result.invalid_contact and delivery.contact_id:
        contact = session.get(Contact, delivery.contact_id)
        if contact is not None:
            contact.valid, contact.invalid_reason = False, (result.reason or "")[:200]
