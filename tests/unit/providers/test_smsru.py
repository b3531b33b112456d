"""The SMS.ru provider against a fake SMS.ru on loopback (real sockets, no patching): the
request it makes, what each answer means, status by sms_id, and callbacks checked against
a token in their URL."""

from __future__ import annotations

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
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from structlog.testing import capture_logs

from cartflow.engine.receipts import InboundRequest, Receipt, ReceiptRejected, ReceiptStatus
from cartflow.engine.scenario.loader import load_config
from cartflow.engine.sending import Message, SendResult
from cartflow.providers.base import ProviderSettingsError
from cartflow.providers.registry import BUILT_IN, validators
from cartflow.providers.smsru import (
    ERROR_CODES,
    HTTP_STATUSES,
    MESSAGE_CODES,
    RECEIPT_STATUSES,
    SmsRuProvider,
)

from ..scenario.sample_config import MAIN, write_config

ROOT = Path(__file__).resolve().parents[3]
API_ID = "F2D79B58-A5A2-2F9E-91C8-73D12CE2E102"
TOKEN = "cb-token-Lq8Zr2Wm"
PHONE = "+79255070602"
DIGITS = PHONE.lstrip("+")
SMS_ID = "000000-10000000"
TEXT = "Ваша корзина ждёт: скидка 10% до вечера"
MESSAGE = Message("d-42", "k-42", "sms", PHONE, {"text": TEXT}, "ru")


def sent_body(code: int = 100, sms_id: str | None = SMS_ID, top: int = 100) -> dict[str, Any]:
    """SMS.ru's JSON answer to a send to one number (its text quotes the number)."""
    entry: dict[str, Any] = {"status": "OK" if code == 100 else "ERROR", "status_code": code}
    if code == 100 and sms_id is not None:
        entry["sms_id"] = sms_id
    if code != 100:
        entry["status_text"] = f"На номер {DIGITS} нельзя отправлять сообщения"
    return {
        "status": "OK" if top == 100 else "ERROR",
        "status_code": top,
        "sms": {DIGITS: entry},
        "balance": 4122.56,
    }


# -- a fake SMS.ru --------------------------------------------------------------------------
@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=sent_body)
    headers: dict[str, str] = field(default_factory=dict)


#: Read the request, then close the connection without answering.
CLOSE = "close"
#: Read the request, then answer nothing until the test ends.
HANG = "hang"


class FakeSmsRu:
    """Answers from ``script`` in order (then an accepted send); records every request."""

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
                body = self.rfile.read(length).decode("utf-8")
                parts = urlsplit(self.path)
                fake.seen.append(
                    Seen(
                        self.command,
                        parts.path,
                        dict(parse_qsl(parts.query)),
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
                data = (
                    reply.body.encode()
                    if isinstance(reply.body, str)
                    else json.dumps(reply.body, ensure_ascii=False).encode()
                )
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
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
def smsru() -> Iterator[FakeSmsRu]:
    fake = FakeSmsRu()
    fake.thread.start()
    yield fake
    fake.release.set()
    fake.server.shutdown()
    fake.server.server_close()


def options(base_url: str, **more: Any) -> dict[str, Any]:
    return {"api_id": API_ID, "base_url": base_url, "timeout": 2, **more}


@pytest.fixture
def build() -> Iterator[Callable[..., SmsRuProvider]]:
    """Builds providers from settings, and closes them when the test ends."""
    built: list[SmsRuProvider] = []

    def make(**settings: Any) -> SmsRuProvider:
        built.append(SmsRuProvider(**settings))
        return built[-1]

    yield make
    for provider in built:
        provider.close()


@pytest.fixture
def provider(smsru: FakeSmsRu, build: Callable[..., SmsRuProvider]) -> SmsRuProvider:
    return build(**options(smsru.url, sender="Shop", receipt_token=TOKEN))


def assert_clean(result: SendResult | Receipt) -> None:
    assert result.reason
    for secret in (PHONE, DIGITS, API_ID, TOKEN, "нельзя"):
        assert secret not in result.reason


# -- the request ----------------------------------------------------------------------------
def test_a_send_is_sms_ru_s_documented_request_in_the_body(
    smsru: FakeSmsRu, provider: SmsRuProvider
) -> None:
    result = provider.send(MESSAGE)

    assert result == SendResult.accepted("smsru", SMS_ID)
    [seen] = smsru.seen
    assert (seen.method, seen.path, seen.query) == ("POST", "/sms/send", {})
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert seen.form == {"api_id": API_ID, "to": DIGITS, "msg": TEXT, "json": "1", "from": "Shop"}


def test_cyrillic_is_sent_as_utf8(smsru: FakeSmsRu, provider: SmsRuProvider) -> None:
    provider.send(MESSAGE)
    # the fake decoded the body as UTF-8 and got the text back exactly
    assert smsru.seen[0].form["msg"] == TEXT


def test_without_a_sender_no_from_is_sent(
    smsru: FakeSmsRu, build: Callable[..., SmsRuProvider]
) -> None:
    assert build(**options(smsru.url)).send(MESSAGE).status == "accepted"
    assert "from" not in smsru.seen[0].form


def test_an_injected_client_is_used(smsru: FakeSmsRu) -> None:
    with httpx.Client(headers={"X-Test": "injected"}) as client:
        provider = SmsRuProvider(client=client, **options(smsru.url))
        assert provider.send(MESSAGE).status == "accepted"
    assert smsru.seen[0].headers["x-test"] == "injected"


# -- what each answer means -----------------------------------------------------------------
#: (answer, result, invalid contact, consent withdrawn, in the reason) — the table of
#: docs/providers-smsru.md, written out here independently of the module's.
ROWS: list[tuple[Reply, str, bool, bool, str]] = [
    (Reply(body=sent_body(202)), "permanent", True, False, "SMS.ru code 202"),
    (Reply(body=sent_body(207)), "permanent", False, False, "SMS.ru code 207"),
    (Reply(body=sent_body(209)), "permanent", False, True, "SMS.ru code 209"),
    (Reply(body=sent_body(215)), "permanent", False, True, "SMS.ru code 215"),
    (Reply(body=sent_body(203)), "permanent", False, False, "SMS.ru code 203"),
    (Reply(body=sent_body(204)), "permanent", False, False, "SMS.ru code 204"),
    (Reply(body=sent_body(205)), "permanent", False, False, "SMS.ru code 205"),
    (Reply(body=sent_body(212)), "permanent", False, False, "SMS.ru code 212"),
    (Reply(body=sent_body(214)), "permanent", False, False, "SMS.ru code 214"),
    (Reply(body=sent_body(216)), "permanent", False, False, "SMS.ru code 216"),
    (Reply(body=sent_body(230)), "retryable", False, False, "SMS.ru code 230"),
    (Reply(body=sent_body(231)), "permanent", False, False, "SMS.ru code 231"),
    (Reply(body=sent_body(232)), "permanent", False, False, "SMS.ru code 232"),
    (Reply(body=sent_body(240)), "permanent", False, False, "SMS.ru code 240"),  # not listed
    (Reply(body=sent_body(top=200)), "permanent", False, False, "SMS.ru code 200"),
    (Reply(body=sent_body(top=201)), "permanent", False, False, "SMS.ru code 201"),
    (Reply(body=sent_body(top=206)), "retryable", False, False, "SMS.ru code 206"),
    (Reply(body=sent_body(top=220)), "retryable", False, False, "SMS.ru code 220"),
    (Reply(body=sent_body(top=300)), "permanent", False, False, "SMS.ru code 300"),
    (Reply(body=sent_body(top=301)), "permanent", False, False, "SMS.ru code 301"),
    (Reply(body=sent_body(top=302)), "permanent", False, False, "SMS.ru code 302"),
    (Reply(body=sent_body(top=500)), "unknown", False, False, "SMS.ru code 500"),
    (Reply(body=sent_body(sms_id=None)), "unknown", False, False, "without the number's id"),
    (Reply(body={"status": "OK", "status_code": 100}), "unknown", False, False, "without"),
    (Reply(body="<html>proxy</html>"), "unknown", False, False, "not SMS.ru's answer"),
    (Reply(body={"status": "OK"}), "unknown", False, False, "not SMS.ru's answer"),
    (Reply(503, {}), "retryable", False, False, "HTTP 503"),
    (Reply(429, {}), "retryable", False, False, "HTTP 429"),
    (Reply(500, {}), "unknown", False, False, "HTTP 500"),
    (Reply(502, {}), "unknown", False, False, "HTTP 502"),
    (Reply(504, {}), "unknown", False, False, "HTTP 504"),
    (Reply(403, {}), "permanent", False, False, "HTTP 403"),
    (Reply(404, {}), "permanent", False, False, "HTTP 404"),
]


def codes(row: tuple[Reply, str, bool, bool, str]) -> set[int]:
    body = row[0].body
    if not isinstance(body, dict) or "sms" not in body:
        return set()
    return {body["status_code"], *(e["status_code"] for e in body["sms"].values())}


def test_every_row_of_the_module_s_tables_is_a_row_here() -> None:
    assert set().union(*(codes(row) for row in ROWS)) >= set(ERROR_CODES)
    assert {row[0].status for row in ROWS} >= set(HTTP_STATUSES)
    assert {code for code, *_ in STATUS_ROWS} >= set(MESSAGE_CODES)
    assert {code for code, *_ in RECEIPT_ROWS} >= set(RECEIPT_STATUSES)


@pytest.mark.parametrize(("reply", "kind", "invalid", "withdrawn", "says"), ROWS)
def test_an_answer_maps_as_the_table_says(
    smsru: FakeSmsRu,
    provider: SmsRuProvider,
    reply: Reply,
    kind: str,
    invalid: bool,
    withdrawn: bool,
    says: str,
) -> None:
    smsru.script.append(reply)

    result = provider.send(MESSAGE)

    assert (result.status, result.invalid_contact, result.consent_withdrawn) == (
        kind,
        invalid,
        withdrawn,
    )
    assert result.provider == "smsru" and result.provider_message_id is None
    assert says in str(result.reason)
    assert_clean(result)


def test_the_number_s_answer_is_found_whatever_its_key(
    smsru: FakeSmsRu, provider: SmsRuProvider
) -> None:
    body = sent_body()
    body["sms"] = {PHONE: body["sms"][DIGITS]}  # keyed with the +
    smsru.script.append(Reply(body=body))
    assert provider.send(MESSAGE) == SendResult.accepted("smsru", SMS_ID)


@pytest.mark.parametrize(
    ("status_code", "header", "expected"),
    [(429, "7", 7.0), (503, "30", 30.0), (429, None, None), (503, "soon", None)],
)
def test_retry_after_is_honoured(
    smsru: FakeSmsRu,
    provider: SmsRuProvider,
    status_code: int,
    header: str | None,
    expected: float | None,
) -> None:
    reply = Reply(status_code, {})
    if header is not None:
        reply.headers["Retry-After"] = header
    smsru.script.append(reply)
    result = provider.send(MESSAGE)
    assert (result.status, result.retry_after) == ("retryable", expected)


def test_a_connection_closed_after_the_body_was_read_is_unknown(
    smsru: FakeSmsRu, provider: SmsRuProvider
) -> None:
    smsru.script.append(CLOSE)
    result = provider.send(MESSAGE)
    assert result.status == "unknown" and len(smsru.seen) == 1
    assert_clean(result)


def test_a_server_that_never_answers_is_unknown(
    smsru: FakeSmsRu, build: Callable[..., SmsRuProvider]
) -> None:
    smsru.script.append(HANG)
    result = build(**options(smsru.url, timeout=0.3)).send(MESSAGE)
    assert (result.status, result.reason) == ("unknown", "ReadTimeout after the request left")


def test_nothing_listening_is_retryable(
    nothing_listening: str, build: Callable[..., SmsRuProvider]
) -> None:
    result = build(**options(nothing_listening)).send(MESSAGE)
    assert (result.status, result.reason) == ("retryable", "ConnectError: nothing was sent")


def test_no_free_connection_in_the_pool_is_retryable(smsru: FakeSmsRu) -> None:
    # Given a client with one connection, taken by a send SMS.ru does not answer yet
    smsru.script.append(HANG)
    client = httpx.Client(
        timeout=httpx.Timeout(5, pool=0.2), limits=httpx.Limits(max_connections=1)
    )
    provider = SmsRuProvider(client=client, **options(smsru.url))
    first: list[SendResult] = []
    waiting = threading.Thread(target=lambda: first.append(provider.send(MESSAGE)))
    waiting.start()
    smsru.wait_for(1)

    # When another send finds no connection
    result = provider.send(MESSAGE)

    # Then it never left, and is retryable; the first is unknown once the server hangs up
    assert result.status == "retryable" and "PoolTimeout" in str(result.reason)
    assert len(smsru.seen) == 1
    smsru.release.set()
    waiting.join(5)
    assert first[0].status == "unknown"
    provider.close()


# -- status(sms_id) -------------------------------------------------------------------------
def status_body(code: int, sms_id: str = SMS_ID) -> dict[str, Any]:
    return {
        "status": "OK",
        "status_code": 100,
        "sms": {sms_id: {"status": "OK", "status_code": code, "cost": 0.5, "status_text": "…"}},
    }


#: An ``sms/status`` code → result.
STATUS_ROWS: list[tuple[int, str]] = [
    (100, "accepted"),
    (101, "accepted"),
    (102, "accepted"),
    (103, "accepted"),
    (110, "accepted"),
    (104, "permanent"),
    (105, "permanent"),
    (106, "permanent"),
    (107, "permanent"),
    (108, "permanent"),
    (150, "permanent"),
]


@pytest.mark.parametrize(("code", "kind"), STATUS_ROWS)
def test_status_asks_sms_ru_by_sms_id(
    smsru: FakeSmsRu, provider: SmsRuProvider, code: int, kind: str
) -> None:
    smsru.script.append(Reply(body=status_body(code)))

    result = provider.status(SMS_ID)

    [seen] = smsru.seen
    assert (seen.method, seen.path) == ("POST", "/sms/status")
    assert seen.form == {"api_id": API_ID, "sms_id": SMS_ID, "json": "1"}
    assert result is not None and result.status == kind
    if kind == "accepted":
        assert result.provider_message_id == SMS_ID
    else:
        assert f"SMS.ru status {code}" in str(result.reason)
        assert not result.invalid_contact and not result.consent_withdrawn


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=status_body(-1)),
        Reply(body=status_body(999)),
        Reply(body=status_body(103, sms_id="other-id")),
        Reply(body={"status": "ERROR", "status_code": 301}),
        Reply(body="not json"),
        Reply(500, {}),
        CLOSE,
    ],
)
def test_status_cannot_tell_without_a_documented_answer(
    smsru: FakeSmsRu, provider: SmsRuProvider, reply: Reply | str
) -> None:
    smsru.script.append(reply)
    assert provider.status(SMS_ID) is None


def test_status_cannot_tell_when_sms_ru_cannot_be_reached(
    nothing_listening: str, build: Callable[..., SmsRuProvider]
) -> None:
    provider = build(**options(nothing_listening))
    assert provider.status(SMS_ID) is None
    assert provider.can_look_up()


# -- callbacks ------------------------------------------------------------------------------
def callback(
    *records: str, token: str | None = TOKEN, indexed: bool = False, body: bytes | None = None
) -> InboundRequest:
    """A callback as SMS.ru posts it: form fields ``data[]`` (or ``data[0]``…), one
    newline-joined record each; the token in the URL cartflow gave SMS.ru."""
    fields = [(f"data[{i}]" if indexed else "data[]", r) for i, r in enumerate(records)]
    return InboundRequest(
        method="POST",
        path="/v1/providers/smsru/status",
        headers={"content-type": "application/x-www-form-urlencoded"},
        query={"token": token} if token is not None else {},
        body=body if body is not None else urlencode(fields).encode(),
    )


AT = datetime(2026, 12, 2, 13, 50, 9, tzinfo=UTC)


def record(code: int, sms_id: str = SMS_ID) -> str:
    return f"sms_status\n{sms_id}\n{code}\n{int(AT.timestamp())}"


#: A callback's status code → receipt.
RECEIPT_ROWS: list[tuple[int, ReceiptStatus]] = [
    (102, ReceiptStatus.ACCEPTED),
    (103, ReceiptStatus.DELIVERED),
    (110, ReceiptStatus.OPENED),
    (104, ReceiptStatus.FAILED),
    (105, ReceiptStatus.FAILED),
    (106, ReceiptStatus.FAILED),
    (107, ReceiptStatus.FAILED),
    (108, ReceiptStatus.FAILED),
    (150, ReceiptStatus.FAILED),
]


@pytest.mark.parametrize(("code", "expected"), RECEIPT_ROWS)
def test_a_checked_callback_is_a_receipt(
    provider: SmsRuProvider, code: int, expected: ReceiptStatus
) -> None:
    [receipt] = provider.parse_receipt(callback(record(code)))
    assert (receipt.provider, receipt.provider_message_id, receipt.status, receipt.at) == (
        "smsru",
        SMS_ID,
        expected,
        AT,
    )
    assert str(receipt.reason).startswith(f"smsru {code}: ")
    assert_clean(receipt)


def test_one_callback_carries_many_records_and_skips_the_rest(provider: SmsRuProvider) -> None:
    request = callback(
        record(103, "000000-1"),
        record(100, "000000-2"),  # still queued: no receipt
        record(101, "000000-3"),
        "callback_check\n12345",  # another kind of record
        record(999, "000000-4"),  # a code not documented
        "sms_status\n<script>\n103\n1",  # an id that is not SMS.ru's shape
        "sms_status\n000000-5",  # cut short
        record(104, "000000-6").replace("\n", "\r\n"),
        indexed=True,
    )
    assert [(r.provider_message_id, r.status) for r in provider.parse_receipt(request)] == [
        ("000000-1", ReceiptStatus.DELIVERED),
        ("000000-6", ReceiptStatus.FAILED),
    ]


def test_a_record_without_a_time_has_none(provider: SmsRuProvider) -> None:
    [receipt] = provider.parse_receipt(callback(f"sms_status\n{SMS_ID}\n103"))
    assert receipt.at is None


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(callback(record(103), token=None), id="no-token"),
        pytest.param(callback(record(103), token="cb-token-wrong"), id="wrong-token"),
        pytest.param(callback(record(103), token=TOKEN + "x"), id="longer-token"),
        pytest.param(callback(record(103), token=""), id="empty-token"),
    ],
)
def test_a_callback_without_the_token_is_refused(
    provider: SmsRuProvider, request_: InboundRequest
) -> None:
    with pytest.raises(ReceiptRejected, match="token") as refused:
        provider.parse_receipt(request_)
    assert TOKEN not in str(refused.value)


def test_without_a_receipt_token_every_callback_is_refused(
    smsru: FakeSmsRu, build: Callable[..., SmsRuProvider]
) -> None:
    with pytest.raises(ReceiptRejected, match="receipt_token is not set"):
        build(**options(smsru.url)).parse_receipt(callback(record(103)))


def test_a_checked_body_that_is_not_a_form_is_unreadable(provider: SmsRuProvider) -> None:
    with pytest.raises(ValueError, match="smsru") as raised:
        provider.parse_receipt(callback(body=b"\xff\xfe"))
    assert not isinstance(raised.value, ReceiptRejected)


def test_sms_ru_is_answered_100(provider: SmsRuProvider) -> None:
    assert provider.receipt_answer() == "100"


def test_nothing_is_logged_and_no_number_reaches_a_reason(
    smsru: FakeSmsRu, provider: SmsRuProvider
) -> None:
    smsru.script += [Reply(body=sent_body(202)), Reply(), Reply(body=status_body(104))]
    with capture_logs() as logs:
        results = [provider.send(MESSAGE), provider.send(MESSAGE), provider.status(SMS_ID)]
        provider.parse_receipt(callback(record(106)))
    assert logs == []
    for result in results:
        assert result is not None and DIGITS not in repr(result) and API_ID not in repr(result)


# -- settings -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("drop", "add", "expected"),
    [
        ("api_id", {}, ["provider 'smsru' needs setting 'api_id'"]),
        (
            None,
            {"base_url": "sms.ru"},
            ["setting 'base_url' of provider 'smsru' must be an http:// or https:// URL"],
        ),
        (None, {"api_id": 12345}, ["setting 'api_id' of provider 'smsru' must be text"]),
        (None, {"sender": ""}, ["setting 'sender' of provider 'smsru' must be text"]),
        (None, {}, []),
    ],
)
def test_settings_problems_name_the_setting(
    drop: str | None, add: dict[str, Any], expected: list[str]
) -> None:
    settings = {**options("https://sms.ru"), **add}
    if drop:
        del settings[drop]
    found = SmsRuProvider.validate(settings)
    assert found == expected
    assert not any(API_ID in line for line in found)


def test_secrets_are_never_shown(build: Callable[..., SmsRuProvider]) -> None:
    with pytest.raises(ProviderSettingsError) as refused:
        SmsRuProvider(api_id=API_ID, timeout="soon")
    assert API_ID not in str(refused.value)
    provider = build(**options("https://sms.ru", receipt_token=TOKEN))
    assert API_ID not in repr(provider) and TOKEN not in repr(provider)
    assert "'api_id': '***'" in repr(provider)
    assert SmsRuProvider.secret() == {"api_id", "receipt_token"}


# -- registration and the documented configuration ------------------------------------------
def test_smsru_is_a_built_in_type_and_an_entry_point() -> None:
    assert BUILT_IN["smsru"] is SmsRuProvider
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    points = meta["project"]["entry-points"]["cartflow.providers"]
    assert points["smsru"] == "cartflow.providers.smsru:SmsRuProvider"


def test_the_documented_snippet_is_a_working_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the providers: snippet of docs/providers-smsru.md, its variables set
    doc = (ROOT / "docs" / "providers-smsru.md").read_text(encoding="utf-8")
    [snippet] = re.findall(r"^```yaml\n(.*?)^```", doc, re.MULTILINE | re.DOTALL)
    sms = snippet.removeprefix("providers:\n")
    monkeypatch.setenv("SMSRU_API_ID", API_ID)
    monkeypatch.setenv("SMSRU_RECEIPT_TOKEN", TOKEN)
    assert "  sms: {type: console}\n" in MAIN
    main = write_config(tmp_path, {"scenarios.yaml": ("  sms: {type: console}\n", sms)})

    # When it is loaded (with the type known, registered or not) and the provider built
    types = {**validators(), "smsru": SmsRuProvider.validate}
    config = load_config(main, provider_types=types)
    spec = config.settings.providers["sms"]
    provider = SmsRuProvider(**spec.options())

    # Then SMS goes through SMS.ru, with the values from the environment
    assert spec.type == "smsru" and config.warnings == []
    assert provider.options.api_id.get_secret_value() == API_ID
    assert provider.options.receipt_token is not None
    assert provider.options.receipt_token.get_secret_value() == TOKEN
    provider.close()
