"""Postmark's webhooks read into receipts: the record tables, and HTTP basic auth checked
before anything is read (refused without credentials, fail closed without settings)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from cartflow.engine.receipts import InboundRequest, Receipt, ReceiptRejected, ReceiptStatus
from cartflow.providers.postmark import PostmarkProvider
from cartflow.providers.postmark_webhooks import (
    BOUNCE_TYPES,
    RECORD_STATUSES,
    SUPPRESSIONS,
    WebhookAuth,
)

TOKEN = "pm-server-token-7Hq2Lx"
ADDRESS = "anna.petrova@example.org"
SENDER = "Shop <shop@example.com>"
HOOK_USER = "postmark-hook"
HOOK_PASSWORD = "hook-pw-Vb93kQ"
#: Nothing is sent in these tests: Postmark's API is never reached.
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture
def provider() -> Iterator[PostmarkProvider]:
    built = PostmarkProvider(
        server_token=TOKEN,
        sender=SENDER,
        base_url=NOWHERE,
        webhook_username=HOOK_USER,
        webhook_password=HOOK_PASSWORD,
    )
    yield built
    built.close()


def assert_clean(text: str | None) -> None:
    assert text
    for secret in (ADDRESS, "anna.petrova", TOKEN, HOOK_PASSWORD, HOOK_USER):
        assert secret not in text


# -- what Postmark sends -------------------------------------------------------------------
MESSAGE_ID = "883953f4-6105-42a2-a16a-77a8eac79483"


def delivery() -> dict[str, Any]:
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": MESSAGE_ID,
        "Recipient": ADDRESS,
        "Tag": "cart:email",
        "DeliveredAt": "2026-12-02T13:51:54.9070259Z",
        "Details": f"smtp;250 2.0.0 OK {ADDRESS}",
        "Metadata": {"delivery_id": "d-42"},
    }


def bounce(kind: str | None, code: int | None, record: str = "Bounce") -> dict[str, Any]:
    return {
        "RecordType": record,
        "ID": 42,
        "Type": kind,
        "TypeCode": code,
        "Name": "a bounce",
        "Tag": "cart:email",
        "MessageID": MESSAGE_ID,
        "Metadata": {"delivery_id": "d-42"},
        "ServerID": 1234,
        "MessageStream": "outbound",
        "Description": f"The server was unable to deliver your message to {ADDRESS}",
        "Details": f"smtp;550 5.1.1 <{ADDRESS}> user unknown",
        "Email": ADDRESS,
        "From": "shop@example.com",
        "BouncedAt": "2026-12-02T08:52:00.3396434-05:00",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Your cart is waiting",
    }


def engagement(record: str) -> dict[str, Any]:
    return {
        "RecordType": record,
        "MessageStream": "outbound",
        "MessageID": MESSAGE_ID,
        "Recipient": ADDRESS,
        "ReceivedAt": "2026-12-02T14:00:00Z",
        "FirstOpen": True,
        "OriginalLink": "https://shop.example/l/d-42/sig?u=https://shop.example/cart",
        "ClickLocation": "HTML",
        "Metadata": {"delivery_id": "d-42"},
    }


def suppression(reason: str | None, origin: str, suppress: bool = True) -> dict[str, Any]:
    return {
        "RecordType": "SubscriptionChange",
        "MessageID": MESSAGE_ID,
        "ServerID": 123456,
        "MessageStream": "outbound",
        "ChangedAt": "2026-12-02T15:00:00.416071Z",
        "Recipient": ADDRESS,
        "Origin": origin,
        "SuppressSending": suppress,
        "SuppressionReason": reason,
        "Tag": "cart:email",
        "Metadata": {"delivery_id": "d-42"},
    }


def webhook(
    record: Any,
    *,
    username: str = HOOK_USER,
    password: str = HOOK_PASSWORD,
    header: str = "authorization",
    scheme: str = "Basic",
) -> InboundRequest:
    """A webhook as Postmark sends it to ``https://<user>:<password>@…``."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return InboundRequest(
        "POST",
        "/v1/providers/postmark/status",
        {header: f"{scheme} {token}", "content-type": "application/json"},
        {},
        json.dumps(record).encode(),
    )


DELIVERED_AT = datetime(2026, 12, 2, 13, 51, 54, 907025, tzinfo=UTC)
BOUNCED_AT = datetime(2026, 12, 2, 13, 52, 0, 339643, tzinfo=UTC)
ENGAGED_AT = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
CHANGED_AT = datetime(2026, 12, 2, 15, 0, 0, 416071, tzinfo=UTC)

#: (webhook body, receipt status or None, reason, when) — the tables of
#: docs/providers-postmark.md, written out here independently of the module's.
RECEIPTS = [
    (delivery(), ReceiptStatus.DELIVERED, "postmark Delivery", DELIVERED_AT),
    (engagement("Open"), ReceiptStatus.OPENED, "postmark Open", ENGAGED_AT),
    (engagement("Click"), ReceiptStatus.CLICKED, "postmark Click", ENGAGED_AT),
    (
        bounce("SpamComplaint", 512, record="SpamComplaint"),
        ReceiptStatus.COMPLAINED,
        "postmark SpamComplaint",
        BOUNCED_AT,
    ),
    *(
        (bounce(kind, code), status, f"postmark Bounce {kind} ({code})", BOUNCED_AT)
        for kind, code, status in [
            ("HardBounce", 1, ReceiptStatus.UNDELIVERABLE),
            ("BadEmailAddress", 100000, ReceiptStatus.UNDELIVERABLE),
            ("SpamComplaint", 100001, ReceiptStatus.COMPLAINED),
            ("Unsubscribe", 16, ReceiptStatus.UNSUBSCRIBED),
            ("SoftBounce", 4096, ReceiptStatus.FAILED),
            ("DnsError", 256, ReceiptStatus.FAILED),
            ("SpamNotification", 512, ReceiptStatus.FAILED),
            ("VirusNotification", 8192, ReceiptStatus.FAILED),
            ("Unknown", 2048, ReceiptStatus.FAILED),
            ("ManuallyDeactivated", 100002, ReceiptStatus.FAILED),
            ("Blocked", 100006, ReceiptStatus.FAILED),
            ("SMTPApiError", 100007, ReceiptStatus.FAILED),
            ("DMARCPolicy", 100009, ReceiptStatus.FAILED),
            ("TemplateRenderingFailed", 100010, ReceiptStatus.FAILED),
        ]
    ),
    *(
        (bounce(kind, code), None, "", None)
        for kind, code in [
            ("Transient", 2),
            ("AutoResponder", 64),
            ("Subscribe", 32),
            ("AddressChange", 128),
            ("OpenRelayTest", 1024),
            ("ChallengeVerification", 16384),
            ("Unconfirmed", 100003),
            ("InboundError", 100008),
        ]
    ),
    # the TypeCode when the Type's name is missing or new; neither known: no receipt
    (bounce(None, 1), ReceiptStatus.UNDELIVERABLE, "postmark Bounce HardBounce (1)", BOUNCED_AT),
    (
        bounce("Renamed", 4096),
        ReceiptStatus.FAILED,
        "postmark Bounce SoftBounce (4096)",
        BOUNCED_AT,
    ),
    (bounce("BrandNew", 777), None, "", None),
    (
        suppression("HardBounce", "Recipient"),
        ReceiptStatus.UNDELIVERABLE,
        "postmark SubscriptionChange HardBounce by Recipient",
        CHANGED_AT,
    ),
    (
        suppression("SpamComplaint", "Recipient"),
        ReceiptStatus.COMPLAINED,
        "postmark SubscriptionChange SpamComplaint by Recipient",
        CHANGED_AT,
    ),
    (
        suppression("ManualSuppression", "Recipient"),
        ReceiptStatus.UNSUBSCRIBED,
        "postmark SubscriptionChange ManualSuppression by Recipient",
        CHANGED_AT,
    ),
    (suppression("ManualSuppression", "Customer"), None, "", None),
    (suppression("ManualSuppression", "Admin"), None, "", None),
    (suppression(None, "Customer", suppress=False), None, "", None),  # a reactivation
    (suppression("SomethingNew", "Recipient"), None, "", None),
    ({**delivery(), "MessageID": None}, None, "", None),
    ({**delivery(), "RecordType": "Inbound"}, None, "", None),
    ({"MessageID": MESSAGE_ID}, None, "", None),
]


def test_every_row_of_the_module_s_tables_is_a_webhook_here() -> None:
    bounces = {body["Type"] for body, *_ in RECEIPTS if body.get("RecordType") == "Bounce"}
    assert set(BOUNCE_TYPES) <= bounces
    records = {body.get("RecordType") for body, *_ in RECEIPTS}
    assert set(RECORD_STATUSES) <= records
    reasons = {body.get("SuppressionReason") for body, *_ in RECEIPTS}
    assert set(SUPPRESSIONS) <= reasons


@pytest.mark.parametrize(("body", "status", "reason", "at"), RECEIPTS)
def test_a_webhook_with_the_right_credentials_is_read_as_the_tables_say(
    provider: PostmarkProvider,
    body: dict[str, Any],
    status: ReceiptStatus | None,
    reason: str,
    at: datetime | None,
) -> None:
    receipts = provider.parse_receipt(webhook(body))

    if status is None:
        assert receipts == []
    else:
        assert receipts == [Receipt("postmark", MESSAGE_ID, status, at=at, reason=reason)]
        assert_clean(receipts[0].reason)


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(webhook(delivery(), password="wrong-password"), id="wrong-password"),
        pytest.param(webhook(delivery(), username="someone"), id="wrong-user"),
        pytest.param(webhook(delivery(), password=HOOK_PASSWORD + "x"), id="longer-password"),
        pytest.param(webhook(delivery(), scheme="Bearer"), id="other-scheme"),
        pytest.param(webhook(delivery(), header="x-authorization"), id="other-header"),
        pytest.param(
            InboundRequest("POST", "/", {}, {}, json.dumps(delivery()).encode()), id="no-header"
        ),
        pytest.param(
            InboundRequest("POST", "/", {"authorization": "Basic %%%"}, {}, b"{}"), id="garbled"
        ),
        pytest.param(
            InboundRequest("POST", "/", {"authorization": "Basic"}, {}, b"{}"), id="empty"
        ),
    ],
)
def test_a_webhook_without_the_right_credentials_is_refused(
    provider: PostmarkProvider, request_: InboundRequest
) -> None:
    with pytest.raises(ReceiptRejected) as refused:
        provider.parse_receipt(request_)
    assert_clean(str(refused.value))


def test_without_webhook_credentials_every_webhook_is_refused() -> None:
    provider = PostmarkProvider(server_token=TOKEN, sender=SENDER, base_url=NOWHERE)
    with pytest.raises(ReceiptRejected, match="webhook_username and webhook_password"):
        provider.parse_receipt(webhook(delivery()))
    provider.close()


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff\xfe", b""])
def test_a_checked_webhook_that_is_not_a_json_object_is_unreadable_not_refused(
    provider: PostmarkProvider, body: bytes
) -> None:
    request = webhook(delivery())
    unreadable = InboundRequest(request.method, request.path, request.headers, {}, body)
    with pytest.raises(ValueError, match="not a JSON object") as raised:
        provider.parse_receipt(unreadable)
    assert not isinstance(raised.value, ReceiptRejected)


def test_the_credentials_never_print() -> None:
    auth = WebhookAuth(HOOK_USER, HOOK_PASSWORD)
    assert HOOK_PASSWORD not in repr(auth) and HOOK_USER not in repr(auth)
