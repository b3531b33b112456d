"""Postmark's webhooks, read into receipts (:class:`~cartflow.engine.receipts.Receipt`).

Postmark signs nothing: a webhook is protected by HTTP basic auth, the user name and the
password written into the webhook URL Postmark is given
(``https://<user>:<password>@shop.example/v1/providers/postmark/status``), which Postmark
sends as ``Authorization: Basic …``. :func:`receipts_in` checks that header first, in
constant time, and refuses a webhook without it, with other credentials, or when cartflow
has none to compare with (fail closed) — :class:`ReceiptRejected`, never "no receipts".

One webhook is one JSON object; its ``RecordType`` says what happened and its
``MessageID`` which message (the ``MessageID`` the send got back). What each record means
is table-driven: :data:`RECORD_STATUSES`, :data:`BOUNCE_TYPES` and :data:`SUPPRESSIONS`.
A reason names the record and its type, never ``Email``, ``Recipient``, ``Details`` or
``Description`` (they quote the address or the receiving server's text).

Errors::

    ValueError
    ├── ReceiptRejected   no credentials, other credentials, or none configured
    └── (itself)          checked, but the body is not a JSON object
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cartflow.engine.receipts import InboundRequest, Receipt, ReceiptRejected, ReceiptStatus

#: ``RecordType`` → receipt, for the records whose type alone says it (``Bounce`` and
#: ``SubscriptionChange`` are read further; any other record gives none).
RECORD_STATUSES: Mapping[str, ReceiptStatus] = {
    "Delivery": ReceiptStatus.DELIVERED,
    "SpamComplaint": ReceiptStatus.COMPLAINED,
    "Open": ReceiptStatus.OPENED,
    "Click": ReceiptStatus.CLICKED,
}
#: Bounce ``Type`` → (its ``TypeCode``, the receipt; None: no receipt — the message is
#: delayed and still tried, or it arrived and this is a reply). Types are at
#: https://postmarkapp.com/developer/api/bounce-api#bounce-types; one not listed gives none.
BOUNCE_TYPES: Mapping[str, tuple[int, ReceiptStatus | None]] = {
    "HardBounce": (1, ReceiptStatus.UNDELIVERABLE),
    "BadEmailAddress": (100000, ReceiptStatus.UNDELIVERABLE),
    "SpamComplaint": (100001, ReceiptStatus.COMPLAINED),
    "Unsubscribe": (16, ReceiptStatus.UNSUBSCRIBED),
    "SoftBounce": (4096, ReceiptStatus.FAILED),
    "DnsError": (256, ReceiptStatus.FAILED),
    "SpamNotification": (512, ReceiptStatus.FAILED),
    "VirusNotification": (8192, ReceiptStatus.FAILED),
    "Unknown": (2048, ReceiptStatus.FAILED),
    "ManuallyDeactivated": (100002, ReceiptStatus.FAILED),
    "Blocked": (100006, ReceiptStatus.FAILED),
    "SMTPApiError": (100007, ReceiptStatus.FAILED),
    "DMARCPolicy": (100009, ReceiptStatus.FAILED),
    "TemplateRenderingFailed": (100010, ReceiptStatus.FAILED),
    "Transient": (2, None),
    "AutoResponder": (64, None),
    "Subscribe": (32, None),
    "AddressChange": (128, None),
    "OpenRelayTest": (1024, None),
    "ChallengeVerification": (16384, None),
    "Unconfirmed": (100003, None),
    "InboundError": (100008, None),
}
#: A ``SubscriptionChange`` that suppresses sending: ``SuppressionReason`` → receipt.
#: ``ManualSuppression`` is an unsubscribe only when the recipient made it (``Origin``
#: ``Recipient``); made by the shop or Postmark (``Customer``, ``Admin``) it gives none.
SUPPRESSIONS: Mapping[str, ReceiptStatus] = {
    "HardBounce": ReceiptStatus.UNDELIVERABLE,
    "SpamComplaint": ReceiptStatus.COMPLAINED,
    "ManualSuppression": ReceiptStatus.UNSUBSCRIBED,
}
#: Who made a suppression, as Postmark names them (shown in a reason; nothing else is).
ORIGINS = frozenset({"Recipient", "Customer", "Admin"})
#: ``RecordType`` → the field with when it happened.
WHEN_FIELDS: Mapping[str, str] = {
    "Delivery": "DeliveredAt",
    "Bounce": "BouncedAt",
    "SpamComplaint": "BouncedAt",
    "Open": "ReceivedAt",
    "Click": "ReceivedAt",
    "SubscriptionChange": "ChangedAt",
}
_BY_CODE = {code: name for name, (code, _) in BOUNCE_TYPES.items()}


@dataclass(frozen=True, repr=False)
class WebhookAuth:
    """The basic-auth credentials Postmark's webhook URL carries (never printed)."""

    username: str
    password: str

    def matches(self, header: str | None) -> bool:
        """Whether ``header`` is ``Basic`` with these credentials (constant-time)."""
        scheme, _, token = (header or "").strip().partition(" ")
        if scheme.lower() != "basic" or not token.strip():
            return False
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        expected = f"{self.username}:{self.password}".encode()
        return hmac.compare_digest(given, expected)

    def __repr__(self) -> str:
        return "WebhookAuth(***)"


def receipts_in(provider: str, auth: WebhookAuth | None, request: InboundRequest) -> list[Receipt]:
    """The receipts in one Postmark webhook, for ``provider``, once ``auth`` lets it in."""
    if auth is None:
        raise ReceiptRejected(
            "postmark: webhook_username and webhook_password are not set: cannot check webhooks"
        )
    header = next((v for k, v in request.headers.items() if k.lower() == "authorization"), None)
    if header is None:
        raise ReceiptRejected("postmark: no Authorization header")
    if not auth.matches(header):
        raise ReceiptRejected("postmark: the webhook's credentials do not match")
    try:
        record = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        record = None
    if not isinstance(record, dict):
        raise ValueError("postmark: the body is not a JSON object")
    return _read(provider, record)


def _read(provider: str, record: dict[str, Any]) -> list[Receipt]:
    kind, message_id = record.get("RecordType"), record.get("MessageID")
    if not isinstance(kind, str) or not isinstance(message_id, str) or not message_id:
        return []
    if kind == "Bounce":
        status, said = _bounce(record)
    elif kind == "SubscriptionChange":
        status, said = _suppression(record)
    else:
        status, said = RECORD_STATUSES.get(kind), ""
    if status is None:
        return []
    at = _when(record.get(WHEN_FIELDS.get(kind, "")))
    return [Receipt(provider, message_id, status, at=at, reason=f"postmark {kind}{said}")]


def _bounce(record: dict[str, Any]) -> tuple[ReceiptStatus | None, str]:
    """A bounce's receipt, by its ``Type`` (its ``TypeCode`` when the name is not known)."""
    name = record.get("Type")
    code = record.get("TypeCode")
    if not (isinstance(name, str) and name in BOUNCE_TYPES):
        number = code if isinstance(code, int) and not isinstance(code, bool) else None
        name = _BY_CODE.get(number) if number is not None else None
        if name is None:
            return None, ""
    number, status = BOUNCE_TYPES[name]
    return status, f" {name} ({number})"


def _suppression(record: dict[str, Any]) -> tuple[ReceiptStatus | None, str]:
    reason, origin = record.get("SuppressionReason"), record.get("Origin")
    if record.get("SuppressSending") is not True or not isinstance(reason, str):
        return None, ""  # a reactivation, or a change without a reason
    status = SUPPRESSIONS.get(reason)
    if status is ReceiptStatus.UNSUBSCRIBED and origin != "Recipient":
        return None, ""  # the shop or Postmark suppressed the address: not the shopper
    who = f" by {origin}" if origin in ORIGINS else ""
    return status, f" {reason}{who}" if status is not None else ""


def _when(value: Any) -> datetime | None:
    """A Postmark timestamp (ISO 8601, ``2019-11-05T16:33:54.9070259Z``), or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
