"""Delivery receipts: what a vendor later says became of a message, in one vocabulary.

Every vendor names its delivery states its own way; a provider's
:meth:`~cartflow.providers.base.Provider.parse_receipt` maps them onto :class:`ReceiptStatus`
(as Novu maps every SMS vendor's webhook status onto one enum), so the code that decides,
the row that stores and the log that reports share the same words.

A callback that cannot prove it comes from the vendor (its signature missing or wrong) is
refused with :class:`ReceiptRejected` — never read as "no receipts", which is what an
empty list says.

Errors::

    ValueError
    └── ReceiptRejected   a callback refused unread: not shown to come from the vendor
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from cartflow.engine.deliveries import DeliveryEvent

#: What became of a message after the provider accepted it: the same vocabulary as the
#: ``delivery_events`` rows a receipt is stored as (one enum, never two mapped by hand).
ReceiptStatus = DeliveryEvent


class ReceiptRejected(ValueError):
    """A callback a provider refuses to read: its signature is missing or does not match,
    or the provider has nothing to check it with. The receiving endpoint answers ``401``;
    the message says why in fixed words (never a header, a parameter or a secret)."""


@dataclass(frozen=True)
class Receipt:
    """One status change of one message, as a vendor reported it."""

    provider: str
    provider_message_id: str
    status: ReceiptStatus
    #: When it happened, by the vendor's clock (None when the vendor does not say).
    at: datetime | None = None
    #: The vendor's own words (its status code or error text), for the log.
    reason: str | None = None


@dataclass(frozen=True)
class InboundRequest:
    """A callback from a vendor, free of any web framework: what a provider reads."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
