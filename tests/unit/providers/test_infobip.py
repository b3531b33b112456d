"""The Infobip SMS provider against a fake Infobip on loopback (real sockets, no patching):
the request it makes, what each answer means, reconciling by messageId, and delivery
reports checked against a shared secret."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from structlog.testing import capture_logs

from cartflow.engine.receipts import InboundRequest, Receipt, ReceiptRejected, ReceiptStatus
from cartflow.engine.scenario.loader import load_config
from cartflow.engine.sending import Message, SendResult, Sent
from cartflow.providers.base import ProviderSettingsError
from cartflow.providers.infobip import (
    DELIVERY_ERRORS,
    GROUPS,
    HTTP_STATUSES,
    SEND_STATUSES,
    InfobipProvider,
)
from cartflow.providers.registry import BUILT_IN, validators

from ..scenario.sample_config import MAIN, write_config

ROOT = Path(__file__).resolve().parents[3]
KEY = "ib-key-7f3Qz9LwPx"
TOKEN = "rcpt-token-Hh2kP0sV"
PHONE = "+79255070602"
DIGITS = PHONE.lstrip("+")
CALLBACK = "https://shop.example/v1/providers/infobip/status"
MESSAGE = Message("d-42", "k-42", "sms", PHONE, {"text": "Your cart is waiting"}, "en")
PENDING = {"groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED"}
DELIVERED = {"groupId": 3, "groupName": "DELIVERED", "id": 5, "name": "DELIVERED_TO_HANDSET"}
NO_ERROR = {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "permanent": False}


def accepted_body(message_id: str = "d-42", status: dict[str, Any] = PENDING) -> dict[str, Any]:
    """Infobip's answer to a send of one message."""
    return {
        "bulkId": "bulk-1",
        "messages": [
            {
                "messageId": message_id,
                "status": {**status, "description": f"Message to {PHONE} accepted"},
                "destination": DIGITS,
                "details": {"messageCount": 1},
            }
        ],
    }


# -- a fake Infobip -------------------------------------------------------------------------
@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=accepted_body)
    headers: dict[str, str] = field(default_factory=dict)


#: Read the request, then close the connection without answering.
CLOSE = "close"
#: Read the request, then answer nothing until the test ends.
HANG = "hang"


class FakeInfobip:
    """Answers through ``answer`` (by default from ``script`` in order, then a 200
    acceptance echoing the messageId); records every request."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.script: list[Reply | str] = []
        self.release = threading.Event()
        self.answer: Callable[[Seen], Reply | str] = self._scripted
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw.decode("utf-8")) if raw else None,
                )
                fake.seen.append(seen)
                reply = fake.answer(seen)
                if reply == HANG:
                    fake.release.wait(10)
                if isinstance(reply, str):  # CLOSE, or HANG once released
                    self.close_connection = True
                    return
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def _scripted(self, seen: Seen) -> Reply | str:
        if self.script:
            return self.script.pop(0)
        own = seen.body["messages"][0]["destinations"][0]["messageId"] if seen.body else "x"
        return Reply(body=accepted_body(own))

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 5
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.seen) >= count


@pytest.fixture
def infobip() -> Iterator[FakeInfobip]:
    fake = FakeInfobip()
    fake.thread.start()
    yield fake
    fake.release.set()
    fake.server.shutdown()
    fake.server.server_close()


def options(base_url: str, **more: Any) -> dict[str, Any]:
    return {"api_key": KEY, "base_url": base_url, "sender": "Shop", "timeout": 2, **more}


@pytest.fixture
def build() -> Iterator[Callable[..., InfobipProvider]]:
    """Builds providers from settings, and closes them when the test ends."""
    built: list[InfobipProvider] = []

    def make(**settings: Any) -> InfobipProvider:
        built.append(InfobipProvider(**settings))
        return built[-1]

    yield make
    for provider in built:
        provider.close()


@pytest.fixture
def provider(infobip: FakeInfobip, build: Callable[..., InfobipProvider]) -> InfobipProvider:
    return build(**options(infobip.url, status_callback=CALLBACK, receipt_token=TOKEN))


def assert_clean(result: SendResult | Receipt) -> None:
    assert result.reason
    for secret in (PHONE, DIGITS, KEY, TOKEN, "Message to"):
        assert secret not in result.reason


# -- the request ----------------------------------------------------------------------------
def test_a_send_is_infobip_s_documented_v3_request(
    infobip: FakeInfobip, provider: InfobipProvider
) -> None:
    result = provider.send(MESSAGE)

    assert result == SendResult.accepted("infobip", "d-42")
    [seen] = infobip.seen
    assert (seen.method, seen.path, seen.query) == ("POST", "/sms/3/messages", {})
    assert seen.headers["authorization"] == f"App {KEY}"
    assert seen.headers["content-type"] == "application/json"
    assert seen.body == {
        "messages": [
            {
                "sender": "Shop",
                "destinations": [{"to": DIGITS, "messageId": "d-42"}],
                "content": {"text": "Your cart is waiting"},
                "webhooks": {
                    "delivery": {"url": f"{CALLBACK}?token={TOKEN}"},
                    "contentType": "application/json",
                    "callbackData": "d-42",
                },
            }
        ]
    }


def test_without_a_sender_or_callback_neither_is_sent(
    infobip: FakeInfobip, build: Callable[..., InfobipProvider]
) -> None:
    settings = options(infobip.url)
    del settings["sender"]
    assert build(**settings).send(MESSAGE).status == "accepted"
    assert infobip.seen[0].body == {
        "messages": [
            {
                "destinations": [{"to": DIGITS, "messageId": "d-42"}],
                "content": {"text": "Your cart is waiting"},
            }
        ]
    }


def test_cyrillic_text_arrives_as_written(infobip: FakeInfobip, provider: InfobipProvider) -> None:
    text = "Ваша корзина ждёт — 10% скидка"
    provider.send(Message("d-7", "k-7", "sms", PHONE, {"text": text}, "ru"))
    assert infobip.seen[0].body["messages"][0]["content"] == {"text": text}


def test_the_callback_url_keeps_its_own_query_and_token(
    infobip: FakeInfobip, build: Callable[..., InfobipProvider]
) -> None:
    provider = build(**options(infobip.url, status_callback=f"{CALLBACK}?shop=7"))
    provider.send(MESSAGE)
    webhooks = infobip.seen[0].body["messages"][0]["webhooks"]
    assert webhooks["delivery"] == {"url": f"{CALLBACK}?shop=7"}  # no token set: none added
    with_token = build(
        **options(infobip.url, status_callback=f"{CALLBACK}?shop=7", receipt_token=TOKEN)
    )
    assert with_token.callback_url() == f"{CALLBACK}?shop=7&token={TOKEN}"


def test_an_injected_client_is_used_with_the_account_s_key(infobip: FakeInfobip) -> None:
    with httpx.Client(headers={"X-Test": "injected"}) as client:
        provider = InfobipProvider(client=client, **options(infobip.url))
        assert provider.send(MESSAGE).status == "accepted"
    assert infobip.seen[0].headers["x-test"] == "injected"
    assert infobip.seen[0].headers["authorization"] == f"App {KEY}"


def test_the_id_infobip_echoes_is_kept(infobip: FakeInfobip, provider: InfobipProvider) -> None:
    infobip.script.append(Reply(body=accepted_body("d-42-echoed")))
    assert provider.send(MESSAGE).provider_message_id == "d-42-echoed"


# -- what each answer means -----------------------------------------------------------------
def status(name: str, group: str) -> dict[str, Any]:
    return {"groupName": group, "name": name, "description": f"about {PHONE}"}


def error_body(status: int, code: str | None) -> Reply:
    """Infobip's v3 error body, its description and violation quoting the number."""
    body: dict[str, Any] = {
        "description": f"Invalid destination {PHONE} ({KEY})",
        "action": "Check the request",
        "violations": [{"property": "messages[0].destinations[0].to", "violation": PHONE}],
        "resources": [],
    }
    if code is not None:
        body["errorCode"] = code
    return Reply(status, body)


#: (answer, result, invalid contact, consent withdrawn, in the reason) — the table of
#: docs/providers-infobip.md, written out here independently of the module's.
ROWS: list[tuple[Reply, str, bool, bool, str]] = [
    (error_body(401, "E401"), "permanent", False, False, "HTTP 401, Infobip error E401"),
    (error_body(403, "E403"), "permanent", False, False, "HTTP 403"),
    (error_body(429, "E429"), "retryable", False, False, "HTTP 429"),
    (error_body(503, None), "retryable", False, False, "HTTP 503"),
    (error_body(500, "E500"), "unknown", False, False, "HTTP 500"),
    (error_body(502, None), "unknown", False, False, "HTTP 502"),
    (error_body(504, None), "unknown", False, False, "HTTP 504"),
    (error_body(400, "E400"), "permanent", False, False, "HTTP 400, Infobip error E400"),
    (error_body(404, None), "permanent", False, False, "HTTP 404"),
    (
        Reply(401, {"requestError": {"serviceException": {"messageId": "UNAUTHORIZED"}}}),
        "permanent",
        False,
        False,
        "Infobip error UNAUTHORIZED",
    ),
    (Reply(body={"bulkId": "b", "messages": []}), "unknown", False, False, "HTTP 200 without"),
    (Reply(body="not json at all"), "unknown", False, False, "HTTP 200 without"),
]
#: A 200 whose message status is ``name`` in ``group`` → (result, invalid, withdrawn).
STATUS_ROWS: list[tuple[str, str, str, bool, bool]] = [
    ("REJECTED_DESTINATION", "REJECTED", "permanent", True, False),
    ("REJECTED_PREFIX_MISSING", "REJECTED", "permanent", True, False),
    ("REJECTED_DND", "REJECTED", "permanent", False, True),
    ("REJECTED_DESTINATION_BLOCKLISTED", "REJECTED", "permanent", False, True),
    ("REJECTED_FLOODING_FILTER", "REJECTED", "retryable", False, False),
    ("REJECTED_SYSTEM_ERROR", "REJECTED", "retryable", False, False),
    ("REJECTED_DUPLICATE_MESSAGE_ID", "REJECTED", "unknown", False, False),
    ("REJECTED_NOT_ENOUGH_CREDITS", "REJECTED", "permanent", False, False),
    ("REJECTED_PREPAID_PACKAGE_EXPIRED", "REJECTED", "permanent", False, False),
    ("REJECTED_SOURCE", "REJECTED", "permanent", False, False),
    ("REJECTED_SENDER", "REJECTED", "permanent", False, False),
    ("REJECTED_NETWORK", "REJECTED", "permanent", False, False),
    ("REJECTED_ROUTE_NOT_AVAILABLE", "REJECTED", "permanent", False, False),
    ("REJECTED_DESTINATION_NOT_REGISTERED", "REJECTED", "permanent", False, False),
    ("REJECTED_MESSAGE_TOO_LONG", "REJECTED", "permanent", False, False),
    ("MISSING_TO", "REJECTED", "permanent", False, False),  # by its group
    ("SIGNALS_BLOCKED", "EXPIRED", "permanent", False, False),
    ("UNDELIVERABLE_NOT_SENT", "UNDELIVERABLE", "permanent", False, False),
    ("PENDING_ENROUTE", "PENDING", "accepted", False, False),
    ("DELIVERED_TO_OPERATOR", "DELIVERED", "accepted", False, False),
    ("SOMETHING_NEW", "SOMETHING_NEW", "unknown", False, False),
]


def test_every_row_of_the_module_s_tables_is_a_row_here() -> None:
    assert {r.status for r, *_ in ROWS} >= set(HTTP_STATUSES)
    assert {name for name, *_ in STATUS_ROWS} >= set(SEND_STATUSES)
    assert {group for _, group, *_ in STATUS_ROWS} >= set(GROUPS)
    assert {error for _, _, error, *_ in LOG_ROWS} >= set(DELIVERY_ERRORS)


@pytest.mark.parametrize(("reply", "kind", "invalid", "withdrawn", "says"), ROWS)
def test_an_http_answer_maps_as_the_table_says(
    infobip: FakeInfobip,
    provider: InfobipProvider,
    reply: Reply,
    kind: str,
    invalid: bool,
    withdrawn: bool,
    says: str,
) -> None:
    infobip.script.append(reply)

    result = provider.send(MESSAGE)

    assert (result.status, result.invalid_contact, result.consent_withdrawn) == (
        kind,
        invalid,
        withdrawn,
    )
    assert result.provider == "infobip" and result.provider_message_id is None
    assert says in str(result.reason)
    assert_clean(result)


@pytest.mark.parametrize(("name", "group", "kind", "invalid", "withdrawn"), STATUS_ROWS)
def test_a_message_status_in_a_200_maps_as_the_table_says(
    infobip: FakeInfobip,
    provider: InfobipProvider,
    name: str,
    group: str,
    kind: str,
    invalid: bool,
    withdrawn: bool,
) -> None:
    infobip.script.append(Reply(body=accepted_body("d-42", status(name, group))))

    result = provider.send(MESSAGE)

    assert (result.status, result.invalid_contact, result.consent_withdrawn) == (
        kind,
        invalid,
        withdrawn,
    )
    if kind == "accepted":
        assert result.provider_message_id == "d-42"
    else:
        assert f"Infobip status {name}" in str(result.reason)
        assert_clean(result)


@pytest.mark.parametrize(("permanent", "kind"), [(False, "retryable"), (True, "permanent")])
def test_a_refused_message_follows_infobip_s_permanent_flag(
    infobip: FakeInfobip, provider: InfobipProvider, permanent: bool, kind: str
) -> None:
    body = accepted_body("d-42", status("REJECTED_OTHER", "REJECTED"))
    body["messages"][0]["error"] = {"name": "EC_SOMETHING", "permanent": permanent}
    infobip.script.append(Reply(body=body))
    result = provider.send(MESSAGE)
    assert result.status == kind
    assert "error EC_SOMETHING" in str(result.reason)


@pytest.mark.parametrize(
    ("status_code", "header", "expected"),
    [(429, "7", 7.0), (429, "1.5", 1.5), (503, "30", 30.0), (429, None, None), (503, "soon", None)],
)
def test_retry_after_is_honoured(
    infobip: FakeInfobip,
    provider: InfobipProvider,
    status_code: int,
    header: str | None,
    expected: float | None,
) -> None:
    reply = error_body(status_code, None)
    if header is not None:
        reply.headers["Retry-After"] = header
    infobip.script.append(reply)
    result = provider.send(MESSAGE)
    assert (result.status, result.retry_after) == ("retryable", expected)


def test_a_connection_closed_after_the_body_was_read_is_unknown(
    infobip: FakeInfobip, provider: InfobipProvider
) -> None:
    infobip.script.append(CLOSE)
    result = provider.send(MESSAGE)
    assert result.status == "unknown"
    assert len(infobip.seen) == 1  # it did leave
    assert_clean(result)


def test_a_server_that_never_answers_is_unknown(
    infobip: FakeInfobip, build: Callable[..., InfobipProvider]
) -> None:
    infobip.script.append(HANG)
    result = build(**options(infobip.url, timeout=0.3)).send(MESSAGE)
    assert (result.status, result.reason) == ("unknown", "ReadTimeout after the request left")


def test_nothing_listening_is_retryable(
    nothing_listening: str, build: Callable[..., InfobipProvider]
) -> None:
    result = build(**options(nothing_listening)).send(MESSAGE)
    assert (result.status, result.reason) == ("retryable", "ConnectError: nothing was sent")


def test_no_free_connection_in_the_pool_is_retryable(infobip: FakeInfobip) -> None:
    # Given a client with one connection, taken by a send Infobip does not answer yet
    infobip.script.append(HANG)
    client = httpx.Client(
        timeout=httpx.Timeout(5, pool=0.2), limits=httpx.Limits(max_connections=1)
    )
    provider = InfobipProvider(client=client, **options(infobip.url))
    first: list[SendResult] = []
    waiting = threading.Thread(target=lambda: first.append(provider.send(MESSAGE)))
    waiting.start()
    infobip.wait_for(1)

    # When another send finds no connection
    result = provider.send(MESSAGE)

    # Then it never left, and is retryable; the first is unknown once the server hangs up
    assert result.status == "retryable" and "PoolTimeout" in str(result.reason)
    assert len(infobip.seen) == 1
    infobip.release.set()
    waiting.join(5)
    assert first[0].status == "unknown"
    provider.close()


# -- reconciling: status() and lookup() by messageId ---------------------------------------
def log_row(message_id: str, name: str, group: str, error: str | None = None) -> dict[str, Any]:
    """One row of Infobip's message logs (``GET /sms/3/logs``)."""
    return {
        "destination": DIGITS,
        "messageId": message_id,
        "sentAt": "2026-12-02T13:50:00.000+0000",
        "doneAt": "2026-12-02T13:50:09.000+0000",
        "status": status(name, group),
        "error": {"name": error or "NO_ERROR", "permanent": error is not None},
        "content": {"text": "Your cart is waiting"},
    }


#: A logged message (status name, group, error) → (result, invalid contact, withdrawn).
UND, NOT_DELIVERED = "UNDELIVERABLE", "UNDELIVERABLE_NOT_DELIVERED"
LOG_ROWS: list[tuple[str, str, str | None, str, bool, bool]] = [
    ("PENDING_WAITING_DELIVERY", "PENDING", None, "accepted", False, False),
    ("DELIVERED_TO_OPERATOR", "DELIVERED", None, "accepted", False, False),
    ("DELIVERED_TO_HANDSET", "DELIVERED", None, "accepted", False, False),
    (NOT_DELIVERED, UND, "EC_UNKNOWN_SUBSCRIBER", "permanent", True, False),
    (NOT_DELIVERED, UND, "EC_TELESERVICE_NOT_PROVISIONED", "permanent", True, False),
    (NOT_DELIVERED, UND, "EC_DEST_ADDRESS_UNABLE_TO_RECEIVE_SMS", "permanent", True, False),
    ("UNDELIVERABLE_REJECTED_OPERATOR", UND, "EC_SC_BLOCKED_BY_END_USER", "permanent", False, True),
    (NOT_DELIVERED, UND, "EC_ABSENT_SUBSCRIBER", "permanent", False, False),
    ("EXPIRED_EXPIRED", "EXPIRED", None, "permanent", False, False),
    ("REJECTED_DESTINATION", "REJECTED", None, "permanent", True, False),
    ("REJECTED_FLOODING_FILTER", "REJECTED", None, "permanent", False, False),  # final here
]


@pytest.mark.parametrize(("name", "group", "error", "kind", "invalid", "withdrawn"), LOG_ROWS)
def test_status_reads_infobip_s_logs_by_message_id(
    infobip: FakeInfobip,
    provider: InfobipProvider,
    name: str,
    group: str,
    error: str | None,
    kind: str,
    invalid: bool,
    withdrawn: bool,
) -> None:
    infobip.script.append(Reply(body={"results": [log_row("d-42", name, group, error)]}))

    result = provider.status("d-42")

    [seen] = infobip.seen
    assert (seen.method, seen.path, seen.query) == ("GET", "/sms/3/logs", {"messageId": ["d-42"]})
    assert seen.headers["authorization"] == f"App {KEY}"
    assert result is not None
    assert (result.status, result.invalid_contact, result.consent_withdrawn) == (
        kind,
        invalid,
        withdrawn,
    )
    if kind == "accepted":
        assert result.provider_message_id == "d-42"
    else:
        assert f"Infobip status {name}" in str(result.reason)
        assert_clean(result)


def test_a_refused_resend_in_the_logs_says_nothing_of_the_message(
    infobip: FakeInfobip, provider: InfobipProvider
) -> None:
    # Given the logs hold the message and a later send refused for reusing its id
    duplicate = log_row("d-42", "REJECTED_DUPLICATE_MESSAGE_ID", "REJECTED")
    infobip.script.append(
        Reply(body={"results": [duplicate, log_row("d-42", "DELIVERED_TO_HANDSET", "DELIVERED")]})
    )
    result = provider.status("d-42")
    assert result == SendResult.accepted("infobip", "d-42")
    infobip.script.append(Reply(body={"results": [duplicate]}))
    assert provider.status("d-42") is None


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body={"results": []}),
        Reply(body={"results": [log_row("d-other", "DELIVERED_TO_HANDSET", "DELIVERED")]}),
        Reply(body={"results": [log_row("d-42", "SOMETHING", "SOMETHING_NEW")]}),
        Reply(body={"results": "no"}),
        Reply(body=["not", "an", "object"]),
        error_body(401, "E401"),
        Reply(500, {}),
        CLOSE,
    ],
)
def test_status_cannot_tell_without_a_documented_log(
    infobip: FakeInfobip, provider: InfobipProvider, reply: Reply | str
) -> None:
    infobip.script.append(reply)
    assert provider.status("d-42") is None


def test_status_cannot_tell_when_infobip_cannot_be_reached(
    nothing_listening: str, build: Callable[..., InfobipProvider]
) -> None:
    assert build(**options(nothing_listening)).status("d-42") is None


def test_lookup_without_a_vendor_id_asks_by_the_delivery_id(
    infobip: FakeInfobip, provider: InfobipProvider
) -> None:
    # Given a send whose answer was lost: no vendor id, but its messageId is the delivery id
    sent = Sent("d-42", None, "sms", PHONE, datetime(2026, 12, 2, 13, 50, tzinfo=UTC))
    infobip.script.append(
        Reply(body={"results": [log_row("d-42", "DELIVERED_TO_HANDSET", "DELIVERED")]})
    )

    result = provider.lookup(sent)

    assert infobip.seen[0].query == {"messageId": ["d-42"]}
    assert result == SendResult.accepted("infobip", "d-42")
    assert provider.can_look_up()


def test_a_send_and_its_reconciliation_use_the_same_id(
    infobip: FakeInfobip, provider: InfobipProvider
) -> None:
    infobip.script.append(CLOSE)  # the fake reads the send, then hangs up
    assert provider.send(MESSAGE).status == "unknown"
    sent_id = infobip.seen[0].body["messages"][0]["destinations"][0]["messageId"]
    infobip.script.append(Reply(body={"results": [log_row(sent_id, "PENDING_ENROUTE", "PENDING")]}))
    result = provider.lookup(Sent("d-42", None, "sms", PHONE, DONE))
    assert result == SendResult.accepted("infobip", "d-42")


# -- delivery reports -----------------------------------------------------------------------
def report_item(
    message_id: str, name: str, group: str, error: str | None = None, permanent: bool = False
) -> dict[str, Any]:
    """One delivery report as Infobip posts it (v3 webhook)."""
    return {
        "bulkId": "bulk-1",
        "messageId": message_id,
        "to": DIGITS,
        "sender": "Shop",
        "sentAt": "2026-12-02T13:50:00.000+0000",
        "doneAt": "2026-12-02T13:50:09.000+0000",
        "messageCount": 1,
        "price": {"pricePerMessage": 0.01, "currency": "EUR"},
        "status": status(name, group),
        "error": {
            "name": error or "NO_ERROR",
            "description": f"about {PHONE}",
            "permanent": permanent,
        },
        "callbackData": message_id,
    }


def report(
    *items: dict[str, Any],
    token: str | None = TOKEN,
    auth: tuple[str, str] | None = None,
    body: bytes | None = None,
) -> InboundRequest:
    """A delivery report as it reaches cartflow's endpoint."""
    headers = {"content-type": "application/json"}
    if auth is not None:
        headers["authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    return InboundRequest(
        method="POST",
        path="/v1/providers/infobip/status",
        headers=headers,
        query={"token": token} if token is not None else {},
        body=body if body is not None else json.dumps({"results": list(items)}).encode(),
    )


DONE = datetime(2026, 12, 2, 13, 50, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "group", "error", "expected", "reason"),
    [
        (
            "DELIVERED_TO_HANDSET",
            "DELIVERED",
            None,
            ReceiptStatus.DELIVERED,
            "infobip DELIVERED_TO_HANDSET",
        ),
        (
            "DELIVERED_TO_OPERATOR",
            "DELIVERED",
            None,
            ReceiptStatus.ACCEPTED,
            "infobip DELIVERED_TO_OPERATOR",
        ),
        ("EXPIRED_EXPIRED", "EXPIRED", None, ReceiptStatus.FAILED, "infobip EXPIRED_EXPIRED"),
        (
            "UNDELIVERABLE_NOT_DELIVERED",
            "UNDELIVERABLE",
            "EC_ABSENT_SUBSCRIBER",
            ReceiptStatus.FAILED,
            "infobip UNDELIVERABLE_NOT_DELIVERED, error EC_ABSENT_SUBSCRIBER",
        ),
        (
            "UNDELIVERABLE_NOT_DELIVERED",
            "UNDELIVERABLE",
            "EC_UNKNOWN_SUBSCRIBER",
            ReceiptStatus.UNDELIVERABLE,
            "infobip UNDELIVERABLE_NOT_DELIVERED, error EC_UNKNOWN_SUBSCRIBER: unknown subscriber",
        ),
        (
            "REJECTED_DESTINATION",
            "REJECTED",
            None,
            ReceiptStatus.UNDELIVERABLE,
            "infobip REJECTED_DESTINATION: invalid destination number",
        ),
        (
            "UNDELIVERABLE_REJECTED_OPERATOR",
            "UNDELIVERABLE",
            "EC_SC_BLOCKED_BY_END_USER",
            ReceiptStatus.UNSUBSCRIBED,
            "infobip UNDELIVERABLE_REJECTED_OPERATOR, error EC_SC_BLOCKED_BY_END_USER: "
            "the recipient blocked this sender",
        ),
    ],
)
def test_a_checked_report_is_a_receipt(
    provider: InfobipProvider,
    name: str,
    group: str,
    error: str | None,
    expected: ReceiptStatus,
    reason: str,
) -> None:
    [receipt] = provider.parse_receipt(report(report_item("d-42", name, group, error)))
    assert receipt == Receipt("infobip", "d-42", expected, at=DONE, reason=reason)
    assert_clean(receipt)


def test_one_report_carries_many_receipts_and_skips_what_says_nothing(
    provider: InfobipProvider,
) -> None:
    receipts = provider.parse_receipt(
        report(
            report_item("d-1", "DELIVERED_TO_HANDSET", "DELIVERED"),
            report_item("d-2", "PENDING_ENROUTE", "PENDING"),
            report_item("d-3", "REJECTED_DUPLICATE_MESSAGE_ID", "REJECTED"),
            report_item("d-4", "NEW_ONE", "NEW_GROUP"),
            {"status": DELIVERED},  # no messageId
            report_item("d-5", "EXPIRED_EXPIRED", "EXPIRED"),
        )
    )
    assert [(r.provider_message_id, r.status) for r in receipts] == [
        ("d-1", ReceiptStatus.DELIVERED),
        ("d-5", ReceiptStatus.FAILED),
    ]


def test_the_report_for_a_send_comes_to_the_url_it_gave(
    infobip: FakeInfobip, provider: InfobipProvider
) -> None:
    # Given the webhook URL the fake Infobip received with a send
    provider.send(MESSAGE)
    url = infobip.seen[0].body["messages"][0]["webhooks"]["delivery"]["url"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}

    # When Infobip posts the report there
    request = InboundRequest(
        "POST",
        urlsplit(url).path,
        {},
        query,
        json.dumps(
            {"results": [report_item("d-42", "DELIVERED_TO_HANDSET", "DELIVERED")]}
        ).encode(),
    )

    # Then it is checked and read, and matches the send by its id
    assert [(r.provider_message_id, r.status) for r in provider.parse_receipt(request)] == [
        ("d-42", ReceiptStatus.DELIVERED)
    ]


def delivered() -> dict[str, Any]:
    return report_item("d-42", "DELIVERED_TO_HANDSET", "DELIVERED")


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(report(delivered(), token=None), id="no-token"),
        pytest.param(report(delivered(), token="rcpt-token-wrong"), id="wrong-token"),
        pytest.param(report(delivered(), token=TOKEN[:-1]), id="token-prefix"),
        pytest.param(report(delivered(), token=""), id="empty-token"),
    ],
)
def test_a_report_without_the_token_is_refused(
    provider: InfobipProvider, request_: InboundRequest
) -> None:
    with pytest.raises(ReceiptRejected, match="token") as refused:
        provider.parse_receipt(request_)
    assert TOKEN not in str(refused.value) and PHONE not in str(refused.value)


@pytest.fixture
def basic(infobip: FakeInfobip, build: Callable[..., InfobipProvider]) -> InfobipProvider:
    return build(**options(infobip.url, receipt_username="infobip", receipt_password=TOKEN))


def test_basic_auth_is_checked_when_configured(basic: InfobipProvider) -> None:
    [receipt] = basic.parse_receipt(report(delivered(), token=None, auth=("infobip", TOKEN)))
    assert receipt.status is ReceiptStatus.DELIVERED
    for auth in (None, ("infobip", "wrong"), ("other", TOKEN)):
        with pytest.raises(ReceiptRejected, match="basic auth") as refused:
            basic.parse_receipt(report(delivered(), token=None, auth=auth))
        assert TOKEN not in str(refused.value)


def test_with_both_secrets_both_must_match(
    infobip: FakeInfobip, build: Callable[..., InfobipProvider]
) -> None:
    both = build(
        **options(
            infobip.url, receipt_token=TOKEN, receipt_username="infobip", receipt_password=TOKEN
        )
    )
    assert both.parse_receipt(report(delivered(), auth=("infobip", TOKEN)))
    with pytest.raises(ReceiptRejected):
        both.parse_receipt(report(delivered()))
    with pytest.raises(ReceiptRejected):
        both.parse_receipt(report(delivered(), token=None, auth=("infobip", TOKEN)))


def test_without_a_secret_every_report_is_refused(
    infobip: FakeInfobip, build: Callable[..., InfobipProvider]
) -> None:
    open_ = build(**options(infobip.url, status_callback=CALLBACK))
    with pytest.raises(ReceiptRejected, match="receipt_token"):
        open_.parse_receipt(report(delivered()))


@pytest.mark.parametrize("body", [b"not json", b'{"results": "no"}', b"[]", b"\xff\xfe"])
def test_a_checked_body_that_is_not_a_report_is_unreadable(
    provider: InfobipProvider, body: bytes
) -> None:
    with pytest.raises(ValueError, match="infobip") as raised:
        provider.parse_receipt(report(body=body))
    assert not isinstance(raised.value, ReceiptRejected)


def test_nothing_is_logged_and_no_number_reaches_a_reason(
    infobip: FakeInfobip, provider: InfobipProvider
) -> None:
    infobip.script += [
        error_body(400, "E400"),
        Reply(body=accepted_body("d-42", status("REJECTED_DESTINATION", "REJECTED"))),
        Reply(body={"results": [log_row("d-42", "EXPIRED_EXPIRED", "EXPIRED")]}),
    ]
    with capture_logs() as logs:
        results = [provider.send(MESSAGE), provider.send(MESSAGE), provider.status("d-42")]
        provider.parse_receipt(report(delivered()))
    assert logs == []
    for result in results:
        assert result is not None and PHONE not in repr(result) and DIGITS not in repr(result)


# -- settings -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("drop", "add", "expected"),
    [
        ("api_key", {}, ["provider 'infobip' needs setting 'api_key'"]),
        ("base_url", {}, ["provider 'infobip' needs setting 'base_url'"]),
        (
            None,
            {"receipt_username": "infobip"},
            [
                "provider 'infobip' takes settings 'receipt_username' and "
                "'receipt_password' together"
            ],
        ),
        (
            None,
            {"status_callback": "/v1/providers/infobip/status"},
            ["setting 'status_callback' of provider 'infobip' must be an http:// or https:// URL"],
        ),
        (None, {"api_key": 12345}, ["setting 'api_key' of provider 'infobip' must be text"]),
        (None, {"notify_url": CALLBACK}, None),
        (None, {}, []),
    ],
)
def test_settings_problems_name_the_setting(
    drop: str | None, add: dict[str, Any], expected: list[str] | None
) -> None:
    settings = {**options("https://xyz.api.infobip.com"), **add}
    if drop:
        del settings[drop]
    found = InfobipProvider.validate(settings)
    if expected is None:  # an unknown setting: named, with the known ones
        [line] = found
        assert line.startswith("unknown setting 'notify_url' for provider 'infobip'")
    else:
        assert found == expected
    assert not any(KEY in line for line in found)


def test_secrets_are_never_shown(build: Callable[..., InfobipProvider]) -> None:
    with pytest.raises(ProviderSettingsError) as refused:
        InfobipProvider(api_key=KEY)
    assert KEY not in str(refused.value)
    provider = build(
        **options(
            "https://xyz.api.infobip.com",
            receipt_token=TOKEN,
            receipt_username="infobip",
            receipt_password=TOKEN,
        )
    )
    assert KEY not in repr(provider) and TOKEN not in repr(provider)
    assert "'api_key': '***'" in repr(provider)
    assert InfobipProvider.secret() == {"api_key", "receipt_token", "receipt_password"}


# -- registration and the documented configuration ------------------------------------------
def test_infobip_is_a_built_in_type_and_an_entry_point() -> None:
    assert BUILT_IN["infobip"] is InfobipProvider
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    points = meta["project"]["entry-points"]["cartflow.providers"]
    assert points["infobip"] == "cartflow.providers.infobip:InfobipProvider"


def test_the_documented_snippet_is_a_working_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the providers: snippet of docs/providers-infobip.md, its variables set
    doc = (ROOT / "docs" / "providers-infobip.md").read_text(encoding="utf-8")
    [snippet] = re.findall(r"^```yaml\n(.*?)^```", doc, re.MULTILINE | re.DOTALL)
    sms = snippet.removeprefix("providers:\n")
    monkeypatch.setenv("INFOBIP_API_KEY", KEY)
    monkeypatch.setenv("INFOBIP_RECEIPT_TOKEN", TOKEN)
    assert "  sms: {type: console}\n" in MAIN
    main = write_config(tmp_path, {"scenarios.yaml": ("  sms: {type: console}\n", sms)})

    # When it is loaded (with the type known, registered or not) and the provider built
    types = {**validators(), "infobip": InfobipProvider.validate}
    config = load_config(main, provider_types=types)
    spec = config.settings.providers["sms"]
    provider = InfobipProvider(**spec.options())

    # Then SMS goes through Infobip, with the values from the environment
    assert spec.type == "infobip" and config.warnings == []
    assert provider.options.api_key.get_secret_value() == KEY
    assert provider.options.receipt_token is not None
    assert provider.options.receipt_token.get_secret_value() == TOKEN
    provider.close()


# -- inbound SMS (STOP) ---------------------------------------------------------------------
def inbound(*items: dict[str, Any], token: str | None = TOKEN) -> InboundRequest:
    """Infobip forwarding SMS sent to the number (MO_JSON_2), as it reaches cartflow."""
    return InboundRequest(
        method="POST",
        path="/v1/providers/infobip/inbound",
        headers={"content-type": "application/json"},
        query={"token": token} if token is not None else {},
        body=json.dumps(
            {"results": list(items), "messageCount": len(items), "pendingMessageCount": 0}
        ).encode(),
    )


def mo(text: str, message_id: str = "817790313235066447") -> dict[str, Any]:
    return {
        "messageId": message_id,
        "from": PHONE.lstrip("+"),
        "to": "385921004026",
        "text": text,
        "cleanText": text,
        "keyword": text.split()[0] if text.split() else "",
        "receivedAt": "2026-12-02T13:50:09.220+0000",
        "smsCount": 1,
        "price": {"pricePerMessage": 0, "currency": "EUR"},
    }


def test_inbound_sms_are_read_after_the_token_is_checked(
    infobip: FakeInfobip, build: Callable[..., InfobipProvider]
) -> None:
    provider = build(**options(infobip.url, receipt_token=TOKEN))
    stop, question = provider.parse_inbound(
        inbound(mo("STOP"), mo("Можно картой?", message_id="a1b2-c3"), {"messageId": "x"})
    )
    assert (stop.channel, stop.sender, stop.text, stop.message_id) == (
        "sms",
        PHONE,
        "STOP",
        "817790313235066447",
    )
    assert stop.at == datetime(2026, 12, 2, 13, 50, 9, 220000, tzinfo=UTC)
    assert question.text == "Можно картой?" and question.message_id == "a1b2-c3"
    for token in (None, "wrong"):
        with pytest.raises(ReceiptRejected, match="token"):
            provider.parse_inbound(inbound(mo("STOP"), token=token))
    with pytest.raises(ValueError, match="results"):
        provider.parse_inbound(
            InboundRequest("POST", "/", {}, {"token": TOKEN}, b'{"messages": []}')
        )
