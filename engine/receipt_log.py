"""Storing what vendors report about sent messages (``POST /v1/providers/{name}/status``).

A receipt names its message by the id the vendor gave it (``provider_message_id``); it is
appended to ``delivery_events`` — the delivery row itself keeps the state the send path
gave it. The same status reported twice for one delivery is one fact: vendors retry their
callbacks, and a second "delivered" changes nothing. A receipt for a message cartflow
does not know (another system's, or one older than the retention) is counted, not stored.

What a receipt says about the shopper is applied at once
(:func:`~cartflow.engine.signals.apply_receipt_signals`: an undeliverable number or
address is never used again, an unsubscribe or a complaint withdraws that channel's
consent), and a step waiting for this receipt (``failover_within``) is woken
(:func:`~cartflow.engine.failover.nudge`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from cartflow.engine.deliveries import add_event
from cartflow.engine.failover import nudge
from cartflow.engine.receipts import Receipt
from cartflow.engine.signals import apply_receipt_signals
from cartflow.engine.store.database import Database
from cartflow.engine.store.models import Delivery, DeliveryEventRow


@dataclass(frozen=True)
class Recorded:
    """What became of a callback's receipts."""

    stored: int = 0
    #: Already known: the same status of the same delivery.
    duplicates: int = 0
    #: No delivery of this provider has that message id.
    unmatched: int = 0


def record_receipts(
    db: Database, provider: str, receipts: Sequence[Receipt], now: datetime
) -> Recorded:
    stored = duplicates = unmatched = 0
    with db.transaction() as session:
        for receipt in receipts:
            delivery = session.scalar(
                select(Delivery)
                .where(
                    Delivery.provider == provider,
                    Delivery.provider_message_id == receipt.provider_message_id,
                )
                .limit(1)
                .with_for_update()  # the same callback twice at once: one stores it
            )
            if delivery is None:
                unmatched += 1
                continue
            known = session.scalar(
                select(DeliveryEventRow.id)
                .where(
                    DeliveryEventRow.delivery_id == delivery.id,
                    DeliveryEventRow.status == receipt.status.value,
                )
                .limit(1)
            )
            if known is not None:
                duplicates += 1
                continue
            add_event(
                session,
                delivery,
                receipt.status,
                receipt.at or now,
                raw=receipt.reason or receipt.status.value,
                received_at=now,
            )
            session.flush()  # a second receipt of the same status in this call sees it
            apply_receipt_signals(session, delivery, receipt, now)
            nudge(session, delivery, receipt.status, now)
            stored += 1
    return Recorded(stored, duplicates, unmatched)
