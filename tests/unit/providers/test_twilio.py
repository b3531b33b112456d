"""The Twilio SMS provider against a fake Twilio on loopback (real sockets, no patching):
the request it makes, what each answer means, reconciling, and signed status callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from cartflow.engine.receipts import InboundRequest, Receipt, ReceiptRejected, ReceiptStatus
from cartflow.engine.scenario.loader import load_config
from cartflow.engine.sending import Message, SendResult, Sent
from cartflow.providers.base import ProviderSettingsError
from cartflow.providers.registry import BUILT_IN, ChannelRouter, available, validators
from cartflow.providers.twilio import ERROR_CODES, TwilioProvider

from ..scenario.sample_config import MAIN, problems, write_config

ROOT = Path(__file__).resolve().parents[3]
SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "tw-token-Zq9xK7wPvL"
PHONE = "+15005550006"
SENDER = "+15005550001"
CALLBACK = "https://shop.example/v1/providers/twilio/status"
MESSAGE = Message("d-42", "k-42", "sms", PHONE, {"text": "Your cart is waiting"}, "en")
CREATED = {"sid": "SM0001", "status": "queued"}


# -- a fake Twilio --------------------------------------------------------------------------
@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class Reply:
    status: int = 201
    body: Any = field(default_factory=lambda: dict(CREATED))
    headers: dict[str, str] = field(default_factory=dict)


#: Read the request, then close the connection without answering.
CLOSE = "close"
#: Read the request, then answer nothing until the test ends.
HANG = "hang"


class FakeTwilio:
    """Answers from ``script`` in order (then 201 with a sid); records every request."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.script: list[Reply | str] = []
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                fake.seen.append(
                    Seen(
                        self.command,
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        dict(parse_qsl(body, keep_blank_values=True)),
                    )
                )
                reply = fake.script.pop(0) if fake.script else Reply()
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

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 5
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.seen) >= count


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    fake.thread.start()
    yield fake
    fake.release.set()
    fake.server.shutdown()
    fake.server.server_close()


def options(base_url: str, **more: Any) -> dict[str, Any]:
    return {
        "account_sid": SID,
        "auth_token": TOKEN,
        "sender": SENDER,
        "base_url": base_url,
        "timeout": 2,
        **more,
    }


@pytest.fixture
def build() -> Iterator[Callable[..., TwilioProvider]]:
    """Builds providers from settings, and closes them when the test ends."""
    built: list[TwilioProvider] = []

    def make(**settings: Any) -> TwilioProvider:
        built.append(TwilioProvider(**settings))
        return built[-1]

    yield make
    for provider in built:
        provider.close()


@pytest.fixture
def provider(twilio: FakeTwilio, build: Callable[..., TwilioProvider]) -> TwilioProvider:
    return build(**options(twilio.url, status_callback=CALLBACK))


def twilio_error(status: int, code: int | None) -> Reply:
    """Twilio's error body, its message quoting the number (and, here, the token)."""
    body: dict[str, Any] = {
        "message": f"The 'To' number {PHONE} is not valid ({TOKEN})",
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    if code is not None:
        body["code"] = code
    return Reply(status, body)


def assert_clean(result: SendResult | Receipt) -> None:
    assert result.reason
    assert PHONE not in result.reason and TOKEN not in result.reason
    assert PHONE.lstrip("+") not in result.reason


# -- the request ----------------------------------------------------------------------------
def test_a_send_is_twilio_s_documented_create_request(
    twilio: FakeTwilio, provider: TwilioProvider
) -> None:
    result = provider.send(MESSAGE)

    assert result == SendResult.accepted("twilio", "SM0001")
    [seen] = twilio.seen
    assert (seen.method, seen.path) == ("POST", f"/2010-04-01/Accounts/{SID}/Messages.json")
    basic = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert seen.headers["authorization"] == f"Basic {basic}"
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert seen.form == {
        "To": PHONE,
        "From": SENDER,
        "Body": "Your cart is waiting",
        "StatusCallback": f"{CALLBACK}?d=d-42",
    }


def test_a_messaging_service_replaces_from_and_no_callback_is_asked_without_a_url(
    twilio: FakeTwilio, build: Callable[..., TwilioProvider]
) -> None:
    settings = options(twilio.url, messaging_service_sid="MG0123")
    del settings["sender"]
    provider = build(**settings)
    assert provider.send(MESSAGE).status == "accepted"
    assert twilio.seen[0].form == {
        "To": PHONE,
        "MessagingServiceSid": "MG0123",
        "Body": "Your cart is waiting",
    }


def test_a_callback_url_with_a_query_of_its_own_gets_the_delivery_id_added(
    twilio: FakeTwilio, build: Callable[..., TwilioProvider]
) -> None:
    provider = build(**options(twilio.url, status_callback=f"{CALLBACK}?shop=7"))
    provider.send(MESSAGE)
    assert twilio.seen[0].form["StatusCallback"] == f"{CALLBACK}?shop=7&d=d-42"


def test_an_injected_client_is_used_with_the_account_s_credentials(twilio: FakeTwilio) -> None:
    with httpx.Client(headers={"X-Test": "injected"}) as client:
        provider = TwilioProvider(client=client, **options(twilio.url))
        assert provider.send(MESSAGE).status == "accepted"
    assert twilio.seen[0].headers["x-test"] == "injected"
    assert twilio.seen[0].headers["authorization"].startswith("Basic ")


# -- what each answer means -----------------------------------------------------------------
#: (HTTP status, Twilio code, result, invalid contact, consent withdrawn) — the table of
#: docs/providers-twilio.md, written out here independently of the module's.
ROWS = [
    (400, 21610, "permanent", False, True),
    (400, 21211, "permanent", True, False),
    (400, 21614, "permanent", True, False),
    (400, 21612, "permanent", False, False),
    (400, 21606, "permanent", False, False),
    (400, 21608, "permanent", False, False),
    (401, 20003, "permanent", False, False),
    (429, 20429, "retryable", False, False),
    (429, None, "retryable", False, False),
    (503, None, "retryable", False, False),
    (503, 20503, "retryable", False, False),
    (500, None, "unknown", False, False),
    (500, 20500, "unknown", False, False),
    (502, None, "unknown", False, False),
    (504, None, "unknown", False, False),
    (400, 21602, "permanent", False, False),  # other 4xx: Twilio's code in the reason
    (404, 20404, "permanent", False, False),
    (400, None, "permanent", False, False),
]


def test_every_code_in_the_module_s_table_is_a_row_here() -> None:
    assert {code for _, code, *_ in ROWS if code in ERROR_CODES} == set(ERROR_CODES)


@pytest.mark.parametrize(("status", "code", "kind", "invalid", "withdrawn"), ROWS)
def test_an_error_answer_maps_as_the_table_says(
    twilio: FakeTwilio,
    provider: TwilioProvider,
    status: int,
    code: int | None,
    kind: str,
    invalid: bool,
    withdrawn: bool,
) -> None:
    twilio.script.append(twilio_error(status, code))

    result = provider.send(MESSAGE)

    assert (result.status, result.invalid_contact, result.consent_withdrawn) == (
        kind,
        invalid,
        withdrawn,
    )
    assert result.provider == "twilio" and result.provider_message_id is None
    assert result.reason is not None and f"HTTP {status}" in result.reason
    if code is not None:
        assert str(code) in result.reason
    assert_clean(result)


@pytest.mark.parametrize(
    ("status", "code", "header", "expected"),
    [
        (429, 20429, "7", 7.0),
        (429, None, "1.5", 1.5),
        (503, None, "30", 30.0),
        (429, 20429, None, None),
        (503, None, "soon", None),
        (429, None, "-3", None),
    ],
)
def test_retry_after_is_honoured(
    twilio: FakeTwilio,
    provider: TwilioProvider,
    status: int,
    code: int | None,
    header: str | None,
    expected: float | None,
) -> None:
    reply = twilio_error(status, code)
    if header is not None:
        reply.headers["Retry-After"] = header
    twilio.script.append(reply)

    result = provider.send(MESSAGE)

    assert (result.status, result.retry_after) == ("retryable", expected)


def test_a_connection_closed_after_the_body_was_read_is_unknown(
    twilio: FakeTwilio, provider: TwilioProvider
) -> None:
    twilio.script.append(CLOSE)
    result = provider.send(MESSAGE)
    assert result.status == "unknown"
    assert len(twilio.seen) == 1  # it did leave
    assert_clean(result)


def test_a_server_that_never_answers_is_unknown(
    twilio: FakeTwilio, build: Callable[..., TwilioProvider]
) -> None:
    twilio.script.append(HANG)
    provider = build(**options(twilio.url, timeout=0.3))
    result = provider.send(MESSAGE)
    assert result.status == "unknown"
    assert result.reason == "ReadTimeout after the request left"


def test_nothing_listening_is_retryable(
    nothing_listening: str, build: Callable[..., TwilioProvider]
) -> None:
    result = build(**options(nothing_listening)).send(MESSAGE)
    assert result.status == "retryable"
    assert result.reason == "ConnectError: nothing was sent"


def test_no_free_connection_in_the_pool_is_retryable(twilio: FakeTwilio) -> None:
    # Given a client with one connection, taken by a send Twilio does not answer yet
    twilio.script.append(HANG)
    client = httpx.Client(
        timeout=httpx.Timeout(5, pool=0.2), limits=httpx.Limits(max_connections=1)
    )
    provider = TwilioProvider(client=client, **options(twilio.url))
    first: list[SendResult] = []
    waiting = threading.Thread(target=lambda: first.append(provider.send(MESSAGE)))
    waiting.start()
    twilio.wait_for(1)

    # When another send finds no connection
    result = provider.send(MESSAGE)

    # Then it never left, and is retryable; the first is unknown once the server hangs up
    assert result.status == "retryable" and "PoolTimeout" in str(result.reason)
    assert len(twilio.seen) == 1
    twilio.release.set()
    waiting.join(5)
    assert first[0].status == "unknown"
    provider.close()


# -- reconciling: status() ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "error_code", "kind", "invalid", "code_in_reason"),
    [
        ("queued", None, "accepted", False, None),
        ("sending", None, "accepted", False, None),
        ("sent", None, "accepted", False, None),
        ("scheduled", None, "accepted", False, None),
        ("delivered", None, "accepted", False, None),
        ("undelivered", 30003, "permanent", False, "30003"),
        ("undelivered", 30007, "permanent", False, "30007"),
        ("failed", 30005, "permanent", True, "30005"),
        ("undelivered", 30006, "permanent", True, "30006"),
        ("canceled", None, "permanent", False, None),
    ],
)
def test_status_asks_twilio_what_became_of_a_message(
    twilio: FakeTwilio,
    provider: TwilioProvider,
    state: str,
    error_code: int | None,
    kind: str,
    invalid: bool,
    code_in_reason: str | None,
) -> None:
    twilio.script.append(
        Reply(200, {"sid": "SM0001", "status": state, "error_code": error_code, "to": PHONE})
    )

    result = provider.status("SM0001")

    [seen] = twilio.seen
    assert (seen.method, seen.path) == ("GET", f"/2010-04-01/Accounts/{SID}/Messages/SM0001.json")
    assert seen.headers["authorization"].startswith("Basic ")
    assert result is not None
    assert (result.status, result.invalid_contact) == (kind, invalid)
    if kind == "accepted":
        assert result.provider_message_id == "SM0001"
    else:
        assert_clean(result)
        assert f"Twilio status {state}" in str(result.reason)
    if code_in_reason:
        assert code_in_reason in str(result.reason)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(404, {"code": 20404, "message": "not found", "status": 404}),
        Reply(200, {"sid": "SM0001", "status": "something-new"}),
        Reply(200, ["not", "an", "object"]),
        Reply(500, {}),
        CLOSE,
    ],
)
def test_status_cannot_tell_without_a_documented_answer(
    twilio: FakeTwilio, provider: TwilioProvider, reply: Reply | str
) -> None:
    twilio.script.append(reply)
    assert provider.status("SM0001") is None


def test_status_cannot_tell_when_twilio_cannot_be_reached(
    nothing_listening: str, build: Callable[..., TwilioProvider]
) -> None:
    assert build(**options(nothing_listening)).status("SM0001") is None


# -- reconciling an unknown send without a sid ---------------------------------------------
SENT_AT = datetime(2026, 12, 2, 13, 50, tzinfo=UTC)
HOUR = timedelta(hours=1)
SENT = Sent("d-42", None, "sms", PHONE, SENT_AT, {"text": "Your cart is waiting"})


def listed(sid: str, body: str, created: datetime) -> dict[str, Any]:
    """One message as Twilio's list gives it (dates in RFC 2822)."""
    return {
        "sid": sid,
        "to": PHONE,
        "body": body,
        "status": "delivered",
        "date_created": format_datetime(created),
    }


def test_lookup_finds_the_message_in_twilio_s_list_by_recipient_body_and_time(
    twilio: FakeTwilio, provider: TwilioProvider
) -> None:
    # Given Twilio lists an older message with the same body, another text, and ours
    messages = [
        listed("SM-other", "Something else", SENT_AT),
        listed("SM-ours", "Your cart is waiting", SENT_AT + timedelta(seconds=2)),
        listed("SM-old", "Your cart is waiting", SENT_AT - timedelta(days=1)),
    ]
    twilio.script += [
        Reply(200, {"messages": messages}),
        Reply(200, {"sid": "SM-ours", "status": "delivered"}),
    ]

    # When cartflow asks what became of its unknown send
    result = provider.lookup(SENT)

    # Then it listed the recipient's messages from its sender, then read ours by its sid
    first, second = twilio.seen
    path, _, query = first.path.partition("?")
    assert (first.method, path) == ("GET", f"/2010-04-01/Accounts/{SID}/Messages.json")
    assert dict(parse_qsl(query)) == {"To": PHONE, "From": SENDER, "PageSize": "50"}
    assert second.path == f"/2010-04-01/Accounts/{SID}/Messages/SM-ours.json"
    assert result is not None and (result.status, result.provider_message_id) == (
        "accepted",
        "SM-ours",
    )


def test_lookup_says_never_created_when_the_list_does_not_have_it(
    twilio: FakeTwilio, provider: TwilioProvider
) -> None:
    twilio.script.append(
        Reply(200, {"messages": [listed("SM-old", "Your cart is waiting", SENT_AT - HOUR)]})
    )

    result = provider.lookup(SENT)

    assert result is not None and result.status == "permanent"
    assert result.reason == "Twilio has no such message: it was never created"
    assert not result.invalid_contact and not result.consent_withdrawn


def test_lookup_with_a_sid_asks_for_that_message(
    twilio: FakeTwilio, provider: TwilioProvider
) -> None:
    twilio.script.append(Reply(200, {"sid": "SM9", "status": "sent"}))

    result = provider.lookup(Sent("d-42", "SM9", "sms", PHONE, SENT_AT))

    [seen] = twilio.seen
    assert seen.path == f"/2010-04-01/Accounts/{SID}/Messages/SM9.json"
    assert result is not None and result.status == "accepted"


@pytest.mark.parametrize(
    "reply", [Reply(500, {}), Reply(200, {"messages": "no"}), Reply(401, {"code": 20003}), CLOSE]
)
def test_lookup_cannot_tell_without_a_list(
    twilio: FakeTwilio, provider: TwilioProvider, reply: Reply | str
) -> None:
    twilio.script.append(reply)
    assert provider.lookup(SENT) is None


def test_twilio_can_always_be_asked(provider: TwilioProvider) -> None:
    assert provider.can_look_up()


# -- status callbacks -----------------------------------------------------------------------
def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's documented algorithm, written out: base64(HMAC-SHA1(token, URL followed by
    each POST parameter's name and value, sorted by name))."""
    data = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def test_the_signature_helper_gives_twilio_s_published_example() -> None:
    # the example of twilio-python's tests/unit/test_request_validator.py
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
        "Caller": "+14158675309",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def callback_params(status: str = "delivered", error: str | None = None) -> dict[str, str]:
    params = {
        "AccountSid": SID,
        "ApiVersion": "2010-04-01",
        "From": SENDER,
        "MessageSid": "SM0001",
        "MessageStatus": status,
        "SmsSid": "SM0001",
        "SmsStatus": status,
        "To": PHONE,
    }
    if error is not None:
        params["ErrorCode"] = error
    return params


def callback(
    params: dict[str, str],
    *,
    token: str = TOKEN,
    url: str = f"{CALLBACK}?d=d-42",
    header: str = "X-Twilio-Signature",
    body: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> InboundRequest:
    """A callback as Twilio sends it: signed for ``url`` with ``params``; ``body`` and
    ``query`` replace what arrives (changed after signing)."""
    parts = urlsplit(url)
    return InboundRequest(
        method="POST",
        path=parts.path,
        headers={
            header: twilio_signature(token, url, params),
            "Content-Type": "application/x-www-form-urlencoded",
        },
        query=query if query is not None else dict(parse_qsl(parts.query)),
        body=urlencode(body if body is not None else params).encode(),
    )


@pytest.mark.parametrize(
    ("status", "error", "expected", "reason"),
    [
        ("delivered", None, ReceiptStatus.DELIVERED, "twilio delivered"),
        ("sent", None, ReceiptStatus.ACCEPTED, "twilio sent"),
        ("read", None, ReceiptStatus.OPENED, "twilio read"),
        ("undelivered", "30003", ReceiptStatus.FAILED, "twilio undelivered, Twilio error 30003"),
        ("failed", "30007", ReceiptStatus.FAILED, "twilio failed, Twilio error 30007"),
        (
            "failed",
            "30005",
            ReceiptStatus.UNDELIVERABLE,
            "twilio failed, Twilio error 30005: unknown destination",
        ),
        (
            "undelivered",
            "30006",
            ReceiptStatus.UNDELIVERABLE,
            "twilio undelivered, Twilio error 30006: landline or unreachable carrier",
        ),
    ],
)
def test_a_signed_callback_is_a_receipt(
    provider: TwilioProvider,
    status: str,
    error: str | None,
    expected: ReceiptStatus,
    reason: str,
) -> None:
    [receipt] = provider.parse_receipt(callback(callback_params(status, error)))
    assert receipt == Receipt("twilio", "SM0001", expected, reason=reason)
    assert_clean(receipt)


@pytest.mark.parametrize("status", ["queued", "accepted", "sending", "scheduled", "new-one"])
def test_a_signed_callback_before_sent_is_no_receipt(provider: TwilioProvider, status: str) -> None:
    assert provider.parse_receipt(callback(callback_params(status))) == []


def test_the_callback_for_a_send_is_signed_for_the_url_the_send_gave(
    twilio: FakeTwilio, provider: TwilioProvider
) -> None:
    # Given the StatusCallback URL the fake Twilio received with a send
    provider.send(MESSAGE)
    url = twilio.seen[0].form["StatusCallback"]

    # When Twilio calls it back, signed for that URL, and the header arrives lower-cased
    request = callback(callback_params(), url=url, header="x-twilio-signature")

    # Then the receipt is read, and the delivery id is in the query it arrived with
    assert [r.status for r in provider.parse_receipt(request)] == [ReceiptStatus.DELIVERED]
    assert request.query == {"d": "d-42"}


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(callback(callback_params(), token="some-other-token"), id="wrong-token"),
        pytest.param(
            InboundRequest("POST", "/v1/providers/twilio/status", {}, {"d": "d-42"}, b"a=b"),
            id="no-header",
        ),
        pytest.param(
            callback(callback_params(), header="X-Twilio-Signature-Not"), id="other-header"
        ),
        pytest.param(
            callback(callback_params(), body=callback_params("failed", "30005")),
            id="body-changed",
        ),
        pytest.param(
            callback(callback_params(), body={**callback_params(), "Extra": "x"}),
            id="parameter-added",
        ),
        pytest.param(callback(callback_params(), query={"d": "d-43"}), id="delivery-id-changed"),
        pytest.param(
            callback(
                callback_params(), url="https://evil.example/v1/providers/twilio/status?d=d-42"
            ),
            id="signed-for-another-url",
        ),
    ],
)
def test_a_callback_not_signed_by_twilio_is_refused(
    provider: TwilioProvider, request_: InboundRequest
) -> None:
    with pytest.raises(ReceiptRejected) as refused:
        provider.parse_receipt(request_)
    assert TOKEN not in str(refused.value) and PHONE not in str(refused.value)


def test_without_a_status_callback_nothing_can_be_checked_so_all_are_refused(
    twilio: FakeTwilio, build: Callable[..., TwilioProvider]
) -> None:
    provider = build(**options(twilio.url))
    with pytest.raises(ReceiptRejected, match="status_callback"):
        provider.parse_receipt(callback(callback_params()))


# -- settings -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("drop", "add", "expected"),
    [
        ("account_sid", {}, ["provider 'twilio' needs setting 'account_sid'"]),
        ("auth_token", {}, ["provider 'twilio' needs setting 'auth_token'"]),
        ("sender", {}, ["provider 'twilio' needs setting 'sender' or 'messaging_service_sid'"]),
        (
            None,
            {"messaging_service_sid": "MG0123"},
            ["provider 'twilio' takes setting 'sender' or 'messaging_service_sid', not both"],
        ),
        (
            None,
            {"status_callback": "/v1/providers/twilio/status"},
            ["setting 'status_callback' of provider 'twilio' must be an http:// or https:// URL"],
        ),
        (None, {"auth_token": 12345}, ["setting 'auth_token' of provider 'twilio' must be text"]),
        (None, {}, []),
    ],
)
def test_settings_problems_name_the_setting(
    drop: str | None, add: dict[str, Any], expected: list[str]
) -> None:
    settings = {**options("https://api.twilio.com"), **add}
    if drop:
        del settings[drop]
    found = TwilioProvider.validate(settings)
    assert found == expected
    assert not any(TOKEN in line for line in found)


def test_bad_settings_refuse_to_build_and_the_token_is_never_shown(
    build: Callable[..., TwilioProvider],
) -> None:
    with pytest.raises(ProviderSettingsError) as refused:
        TwilioProvider(account_sid=SID, auth_token=TOKEN)
    assert TOKEN not in str(refused.value)
    provider = build(**options("https://api.twilio.com"))
    assert TOKEN not in repr(provider)
    assert "'auth_token': '***'" in repr(provider)
    assert TwilioProvider.secret() == {"auth_token"}


# -- registration and the documented configuration ------------------------------------------
def test_twilio_is_a_built_in_type_and_an_entry_point() -> None:
    assert BUILT_IN["twilio"] is TwilioProvider is available()["twilio"]
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    points = meta["project"]["entry-points"]["cartflow.providers"]
    assert points["twilio"] == "cartflow.providers.twilio:TwilioProvider"


def test_the_documented_snippet_is_a_working_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the providers: snippet of docs/providers-twilio.md, its variables set
    doc = (ROOT / "docs" / "providers-twilio.md").read_text(encoding="utf-8")
    [snippet] = re.findall(r"^```yaml\n(.*?)^```", doc, re.MULTILINE | re.DOTALL)
    sms = snippet.removeprefix("providers:\n")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("TWILIO_MESSAGING_SERVICE_SID", "MG0123")
    assert "  sms: {type: console}\n" in MAIN
    main = write_config(tmp_path, {"scenarios.yaml": ("  sms: {type: console}\n", sms)})

    # When it is validated and a router built from it
    assert problems(main) == []
    config = load_config(main, provider_types=validators())
    router = ChannelRouter.from_settings(config.settings.providers)

    # Then SMS goes through Twilio, with the values from the environment
    provider = router.by_channel["sms"]
    assert isinstance(provider, TwilioProvider)
    assert provider.options.messaging_service_sid == "MG0123"
    assert provider.options.auth_token.get_secret_value() == TOKEN
    router.close()
