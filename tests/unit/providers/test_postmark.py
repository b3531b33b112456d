"""The Postmark email provider against a fake Postmark on loopback (real sockets, no
patching): the request it makes, what each answer means, reconciling by MessageID and by
delivery id, and a webhook for a message it sent (the webhook tables and their basic auth:
test_postmark_webhooks.py)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from ruamel.yaml import YAML
from structlog.testing import capture_logs

from cartflow.engine.receipts import Receipt, ReceiptStatus
from cartflow.engine.scenario.loader import load_config
from cartflow.engine.sending import Message, SendResult, Sent
from cartflow.providers.base import ProviderSettingsError
from cartflow.providers.postmark import ERROR_CODES, SEARCH_SETTLE, PostmarkProvider
from cartflow.providers.postmark_webhooks import WebhookAuth
from cartflow.providers.registry import validators

from ..scenario.sample_config import MAIN, write_config
from .test_postmark_webhooks import (
    ADDRESS,
    HOOK_PASSWORD,
    HOOK_USER,
    SENDER,
    TOKEN,
    delivery,
    webhook,
)

ROOT = Path(__file__).resolve().parents[3]
UNSUBSCRIBE = "https://shop.example/u/d-42/s1gn4ture"
METADATA = {
    "cartflow_delivery_id": "d-42",
    "scenario": "cart",
    "step": "email",
    "token": "CART-10-XYZ",
    "unsubscribe_url": UNSUBSCRIBE,
}
HTML = (
    "<html><head><style>p { color: red } @media (max-width: 600px) { p { color: blue } }"
    "</style></head><body><p>Your cart</p></body></html>"
)
MESSAGE = Message(
    "d-42",
    "j-1:email",
    "email",
    ADDRESS,
    {"subject": "Your  cart\n is waiting", "text": "Your cart is waiting", "html": HTML},
    "en",
    METADATA,
)


# -- a fake Postmark ------------------------------------------------------------------------
@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


#: Read the request, then close the connection without answering.
CLOSE = "close"
#: Read the request, then answer nothing until the test ends.
HANG = "hang"

Answer = Reply | str | Callable[["FakePostmark", Seen], "Reply | str"]


class FakePostmark:
    """Postmark's documented API, in memory: ``POST /email`` keeps the message and answers
    its ``MessageID``; ``GET /messages/outbound/{id}/details`` and the outbound search by
    ``metadata_<key>`` answer from what it kept; a wrong token is 401 with ErrorCode 10.
    A test puts answers of its own in ``script`` (a :class:`Reply`, :data:`CLOSE`,
    :data:`HANG`, or a function of the request); every request is recorded."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.script: list[Answer] = []
        self.kept: dict[str, dict[str, Any]] = {}
        #: The ``Date`` the fake answers with (None: the real time; text: as it is).
        self.date: datetime | str | None = None
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def date_time_string(self, timestamp: float | None = None) -> str:
                if isinstance(fake.date, str):
                    return fake.date
                if fake.date is not None:
                    return format_datetime(fake.date, usegmt=True)
                return super().date_time_string(timestamp)

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query, keep_blank_values=True)),
                    {k.lower(): v for k, v in self.headers.items()},
                    json.loads(raw) if raw else None,
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

    def answer(self, seen: Seen) -> Reply | str:
        if self.script:
            scripted = self.script.pop(0)
            return scripted(self, seen) if callable(scripted) else scripted
        if seen.headers.get("x-postmark-server-token") != TOKEN:
            return Reply(401, {"ErrorCode": 10, "Message": "Bad or missing server token"})
        if (seen.method, seen.path) == ("POST", "/email"):
            return self.accept(seen)
        found = re.fullmatch(r"/messages/outbound/([^/]+)/details", seen.path)
        if seen.method == "GET" and found:
            kept = self.kept.get(found[1])
            if kept is None:
                return Reply(422, {"ErrorCode": 701, "Message": "Message not found"})
            return Reply(200, {"MessageID": found[1], "Status": "Sent", "To": [kept["To"]]})
        if (seen.method, seen.path) == ("GET", "/messages/outbound"):
            return self.search(seen.query)
        return Reply(404, {"ErrorCode": 0, "Message": "no such endpoint"})

    def accept(self, seen: Seen) -> Reply:
        message_id = f"0000000{len(self.kept) + 1}-b7bc-4f4a-af7d-e6c392c2f817"
        self.kept[message_id] = seen.body
        return Reply(
            200,
            {
                "To": seen.body["To"],
                "SubmittedAt": "2026-12-02T08:50:00.1794748-05:00",
                "MessageID": message_id,
                "ErrorCode": 0,
                "Message": "OK",
            },
        )

    def search(self, query: dict[str, str]) -> Reply:
        wanted = {k.removeprefix("metadata_"): v for k, v in query.items() if "metadata_" in k}
        listed = [
            {
                "MessageID": message_id,
                "Status": "Sent",
                "Recipients": [body["To"]],
                "Metadata": body.get("Metadata", {}),
            }
            for message_id, body in self.kept.items()
            if all(body.get("Metadata", {}).get(k) == v for k, v in wanted.items())
        ]
        start, count = int(query["offset"]), int(query["count"])
        return Reply(200, {"TotalCount": len(listed), "Messages": listed[start : start + count]})

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 5
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.seen) >= count


def accepted_then(action: str) -> Callable[[FakePostmark, Seen], str]:
    """Keep the message as Postmark would, then ``action`` instead of answering."""

    def answer(fake: FakePostmark, seen: Seen) -> str:
        fake.accept(seen)
        return action

    return answer


@pytest.fixture
def postmark() -> Iterator[FakePostmark]:
    fake = FakePostmark()
    fake.thread.start()
    yield fake
    fake.release.set()
    fake.server.shutdown()
    fake.server.server_close()


def options(base_url: str, **more: Any) -> dict[str, Any]:
    return {
        "server_token": TOKEN,
        "sender": SENDER,
        "base_url": base_url,
        "timeout": 2,
        **more,
    }


@pytest.fixture
def build() -> Iterator[Callable[..., PostmarkProvider]]:
    """Builds providers from settings, and closes them when the test ends."""
    built: list[PostmarkProvider] = []

    def make(**settings: Any) -> PostmarkProvider:
        built.append(PostmarkProvider(**settings))
        return built[-1]

    yield make
    for provider in built:
        provider.close()


@pytest.fixture
def provider(postmark: FakePostmark, build: Callable[..., PostmarkProvider]) -> PostmarkProvider:
    return build(
        **options(postmark.url, webhook_username=HOOK_USER, webhook_password=HOOK_PASSWORD)
    )


def assert_clean(result: SendResult | Receipt | str) -> None:
    text = result if isinstance(result, str) else result.reason
    assert text
    for secret in (ADDRESS, "anna.petrova", TOKEN, HOOK_PASSWORD, HOOK_USER):
        assert secret not in text


# -- the request ----------------------------------------------------------------------------
def test_a_send_is_postmark_s_documented_email_request(
    postmark: FakePostmark, provider: PostmarkProvider
) -> None:
    result = provider.send(MESSAGE)

    [seen] = postmark.seen
    [message_id] = postmark.kept
    assert result == SendResult.accepted("postmark", message_id)
    assert (seen.method, seen.path, seen.query) == ("POST", "/email", {})
    assert seen.headers["x-postmark-server-token"] == TOKEN
    assert seen.headers["accept"] == "application/json"
    assert seen.headers["content-type"] == "application/json"
    html = seen.body.pop("HtmlBody")
    assert seen.body == {
        "From": SENDER,
        "To": ADDRESS,
        "Subject": "Your cart is waiting",
        "TextBody": "Your cart is waiting",
        "MessageStream": "outbound",
        "Tag": "cart:email",
        "Metadata": {"delivery_id": "d-42"},  # never the discount code
        "TrackOpens": False,
        "TrackLinks": "None",
        "Headers": [
            {"Name": "List-Unsubscribe", "Value": f"<{UNSUBSCRIBE}>"},
            {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
        ],
    }
    # the CSS is inlined; the media query, which cannot be, stays in a <style>
    assert '<p style="color: red;">Your cart</p>' in html
    assert "@media (max-width: 600px)" in html


def test_the_stream_tracking_reply_to_and_mailto_settings_reach_postmark(
    postmark: FakePostmark, build: Callable[..., PostmarkProvider]
) -> None:
    provider = build(
        **options(
            postmark.url,
            message_stream="abandoned-carts",
            track_opens=True,
            track_links="HtmlAndText",
            reply_to="help@example.com",
            list_unsubscribe_mailto="unsubscribe@example.com",
            inline_css=False,
        )
    )
    assert provider.send(MESSAGE).status == "accepted"
    body = postmark.seen[0].body
    assert (body["MessageStream"], body["TrackOpens"], body["TrackLinks"]) == (
        "abandoned-carts",
        True,
        "HtmlAndText",
    )
    assert body["ReplyTo"] == "help@example.com"
    assert body["Headers"][0]["Value"] == f"<{UNSUBSCRIBE}>, <mailto:unsubscribe@example.com>"
    assert body["HtmlBody"] == HTML  # inline_css: false sends it as written


def test_a_message_without_html_metadata_or_a_safe_unsubscribe_url_sends_just_that(
    postmark: FakePostmark, provider: PostmarkProvider
) -> None:
    plain = Message("d-43", "j-1:email", "email", ADDRESS, {"subject": "Hi", "text": "Hi"}, "en")
    unsafe = Message(
        "d-44",
        "j-1:email",
        "email",
        ADDRESS,
        {"subject": "Hi", "text": "Hi"},
        "en",
        {"scenario": "cart", "unsubscribe_url": "http://shop.example/u/d-44"},
    )
    with capture_logs() as logs:
        assert provider.send(plain).status == "accepted"
        assert provider.send(unsafe).status == "accepted"
    first, second = (seen.body for seen in postmark.seen)
    assert not {"HtmlBody", "Tag", "Headers", "ReplyTo"} & set(first)
    assert second["Tag"] == "cart" and "Headers" not in second
    assert logs == [
        {
            "event": "postmark_unsubscribe_url_refused",
            "delivery_id": "d-44",
            "log_level": "warning",
        }
    ]


@pytest.mark.parametrize("address", ["", "not-an-address", f"{ADDRESS}, b@example.org"])
def test_an_address_that_is_not_one_email_address_is_never_sent(
    postmark: FakePostmark, provider: PostmarkProvider, address: str
) -> None:
    message = Message("d-45", "k", "email", address, {"subject": "Hi", "text": "Hi"}, "en")
    result = provider.send(message)
    assert (result.status, result.invalid_contact) == ("permanent", True)
    assert postmark.seen == []
    assert_clean(result)


def test_an_injected_client_is_used_with_the_server_token(postmark: FakePostmark) -> None:
    with httpx.Client(headers={"X-Test": "injected"}) as client:
        provider = PostmarkProvider(client=client, **options(postmark.url))
        assert provider.send(MESSAGE).status == "accepted"
    assert postmark.seen[0].headers["x-test"] == "injected"
    assert postmark.seen[0].headers["x-postmark-server-token"] == TOKEN


def test_a_wrong_token_is_refused_for_good_by_the_fake_as_by_postmark(
    postmark: FakePostmark, build: Callable[..., PostmarkProvider]
) -> None:
    result = build(**options(postmark.url, server_token="some-other-token")).send(MESSAGE)
    assert (result.status, result.reason) == (
        "permanent",
        "HTTP 401, Postmark error 10: bad or missing server token: check server_token",
    )


# -- what each answer means -----------------------------------------------------------------
#: (HTTP status, Postmark ErrorCode, result, invalid contact) — the table of
#: docs/providers-postmark.md, written out here independently of the module's.
ROWS = [
    (422, 406, "permanent", True),
    (422, 300, "permanent", False),
    (401, 10, "permanent", False),
    (422, 400, "permanent", False),
    (422, 401, "permanent", False),
    (422, 405, "permanent", False),
    (422, 412, "permanent", False),
    (422, 413, "permanent", False),
    (422, 100, "retryable", False),
    (429, 429, "retryable", False),
    (429, None, "retryable", False),
    (503, None, "retryable", False),
    (503, 100, "retryable", False),
    (500, None, "unknown", False),
    (500, 0, "unknown", False),
    (502, None, "unknown", False),
    (504, None, "unknown", False),
    (401, None, "permanent", False),
    (422, 402, "permanent", False),  # other codes: Postmark's code in the reason
    (422, 1235, "permanent", False),
    (404, None, "permanent", False),
    (422, None, "permanent", False),
]


def test_every_code_in_the_module_s_table_is_a_row_here() -> None:
    assert {code for _, code, *_ in ROWS if code in ERROR_CODES} == set(ERROR_CODES)


def postmark_error(status: int, code: int | None) -> Reply:
    """Postmark's error body, its Message quoting the address (and, here, the token)."""
    body: dict[str, Any] = {"Message": f"Found inactive addresses: {ADDRESS}. ({TOKEN})"}
    if code is not None:
        body["ErrorCode"] = code
    return Reply(status, body)


@pytest.mark.parametrize(("status", "code", "kind", "invalid"), ROWS)
def test_an_error_answer_maps_as_the_table_says(
    postmark: FakePostmark,
    provider: PostmarkProvider,
    status: int,
    code: int | None,
    kind: str,
    invalid: bool,
) -> None:
    postmark.script.append(postmark_error(status, code))

    result = provider.send(MESSAGE)

    assert (result.status, result.invalid_contact, result.consent_withdrawn) == (
        kind,
        invalid,
        False,
    )
    assert result.provider == "postmark" and result.provider_message_id is None
    assert result.reason is not None and result.reason.startswith(f"HTTP {status}")
    if code is not None:
        assert f"Postmark error {code}" in result.reason
    assert_clean(result)


def test_an_inactive_recipient_says_why_in_fixed_words(
    postmark: FakePostmark, provider: PostmarkProvider
) -> None:
    postmark.script.append(postmark_error(422, 406))
    assert provider.send(MESSAGE).reason == (
        "HTTP 422, Postmark error 406: inactive recipient "
        "(hard bounce, spam complaint or manual suppression)"
    )


@pytest.mark.parametrize(
    ("status", "code", "header", "expected"),
    [
        (429, 429, "7", 7.0),
        (429, None, "1.5", 1.5),
        (503, None, "30", 30.0),
        (429, 429, None, None),
        (503, None, "soon", None),
        (429, None, "-3", None),
    ],
)
def test_retry_after_is_honoured(
    postmark: FakePostmark,
    provider: PostmarkProvider,
    status: int,
    code: int | None,
    header: str | None,
    expected: float | None,
) -> None:
    reply = postmark_error(status, code)
    if header is not None:
        reply.headers["Retry-After"] = header
    postmark.script.append(reply)

    result = provider.send(MESSAGE)

    assert (result.status, result.retry_after) == ("retryable", expected)


def test_a_connection_closed_after_the_body_was_read_is_unknown(
    postmark: FakePostmark, provider: PostmarkProvider
) -> None:
    postmark.script.append(CLOSE)
    result = provider.send(MESSAGE)
    assert result.status == "unknown"
    assert len(postmark.seen) == 1  # it did leave
    assert_clean(result)


def test_a_server_that_never_answers_is_unknown(
    postmark: FakePostmark, build: Callable[..., PostmarkProvider]
) -> None:
    postmark.script.append(HANG)
    result = build(**options(postmark.url, timeout=0.3)).send(MESSAGE)
    assert (result.status, result.reason) == ("unknown", "ReadTimeout after the request left")


def test_nothing_listening_is_retryable(
    nothing_listening: str, build: Callable[..., PostmarkProvider]
) -> None:
    result = build(**options(nothing_listening)).send(MESSAGE)
    assert (result.status, result.reason) == ("retryable", "ConnectError: nothing was sent")


def test_no_free_connection_in_the_pool_is_retryable(postmark: FakePostmark) -> None:
    # Given a client with one connection, taken by a send Postmark does not answer yet
    postmark.script.append(HANG)
    client = httpx.Client(
        timeout=httpx.Timeout(5, pool=0.2), limits=httpx.Limits(max_connections=1)
    )
    provider = PostmarkProvider(client=client, **options(postmark.url))
    first: list[SendResult] = []
    waiting = threading.Thread(target=lambda: first.append(provider.send(MESSAGE)))
    waiting.start()
    postmark.wait_for(1)

    # When another send finds no connection
    result = provider.send(MESSAGE)

    # Then it never left, and is retryable; the first is unknown once the server hangs up
    assert result.status == "retryable" and "PoolTimeout" in str(result.reason)
    assert len(postmark.seen) == 1
    postmark.release.set()
    waiting.join(5)
    assert first[0].status == "unknown"
    provider.close()


def test_a_stylesheet_the_html_links_to_is_never_fetched_while_sending(
    postmark: FakePostmark, provider: PostmarkProvider
) -> None:
    # Given HTML that links a stylesheet on a server that records every request
    linked = f'<link rel="stylesheet" href="{postmark.url}/x.css"><p>Hi</p>'
    message = Message(
        "d-46", "k", "email", ADDRESS, {"subject": "s", "text": "t", "html": linked}, "en"
    )

    # When it is sent
    assert provider.send(message).status == "accepted"

    # Then the only request was the send: the link is dropped, not loaded
    assert [(seen.method, seen.path) for seen in postmark.seen] == [("POST", "/email")]
    assert "<p>Hi</p>" in postmark.seen[0].body["HtmlBody"]
    assert "x.css" not in postmark.seen[0].body["HtmlBody"]


# -- reconciling ----------------------------------------------------------------------------
SENT_AT = datetime(2026, 12, 2, 13, 50, tzinfo=UTC)


def sent(provider_message_id: str | None = None, delivery_id: str = "d-42") -> Sent:
    return Sent(delivery_id, provider_message_id, "email", ADDRESS, SENT_AT, dict(MESSAGE.parts))


@pytest.mark.parametrize("state", ["Sent", "Queued", "Processed", "sent"])
def test_status_asks_postmark_for_the_message_s_details(
    postmark: FakePostmark, provider: PostmarkProvider, state: str
) -> None:
    postmark.script.append(Reply(200, {"MessageID": "pm-1", "Status": state}))

    result = provider.status("pm-1")

    [seen] = postmark.seen
    assert (seen.method, seen.path) == ("GET", "/messages/outbound/pm-1/details")
    assert seen.headers["x-postmark-server-token"] == TOKEN
    assert seen.headers["accept"] == "application/json"
    assert result == SendResult.accepted("postmark", "pm-1")


@pytest.mark.parametrize(
    "reply",
    [
        Reply(422, {"ErrorCode": 701, "Message": "Message not found"}),
        Reply(200, {"MessageID": "pm-1", "Status": "something-new"}),
        Reply(200, ["not", "an", "object"]),
        Reply(500, {}),
        CLOSE,
    ],
)
def test_status_cannot_tell_without_a_documented_answer(
    postmark: FakePostmark, provider: PostmarkProvider, reply: Reply | str
) -> None:
    postmark.script.append(reply)
    assert provider.status("pm-1") is None


def test_status_and_find_cannot_tell_when_postmark_cannot_be_reached(
    nothing_listening: str, build: Callable[..., PostmarkProvider]
) -> None:
    provider = build(**options(nothing_listening))
    assert provider.status("pm-1") is None
    assert provider.find("d-42") is None
    assert provider.lookup(sent()) is None


def test_find_searches_postmark_s_sent_messages_by_the_delivery_id(
    postmark: FakePostmark, provider: PostmarkProvider
) -> None:
    # Given Postmark holds another delivery's message and ours
    provider.send(Message("d-41", "k", "email", ADDRESS, {"subject": "s", "text": "t"}, "en"))
    provider.send(MESSAGE)
    ours = list(postmark.kept)[1]

    # When cartflow looks for its delivery
    result = provider.find("d-42")

    # Then it asked the documented search, filtered by metadata, for one message
    seen = postmark.seen[-1]
    assert (seen.method, seen.path) == ("GET", "/messages/outbound")
    assert seen.query == {"count": "1", "offset": "0", "metadata_delivery_id": "d-42"}
    assert seen.headers["x-postmark-server-token"] == TOKEN
    assert result == SendResult.accepted("postmark", ours)
    assert provider.find("d-99") is None


def test_a_listed_message_of_another_delivery_is_not_taken_for_ours(
    postmark: FakePostmark, provider: PostmarkProvider
) -> None:
    other = {"MessageID": "pm-9", "Status": "Sent", "Metadata": {"delivery_id": "d-7"}}
    postmark.script.append(Reply(200, {"TotalCount": 1, "Messages": [other]}))
    assert provider.find("d-42") is None


def test_an_unknown_send_postmark_kept_is_found_again_by_its_delivery_id(
    postmark: FakePostmark, provider: PostmarkProvider
) -> None:
    # Given Postmark kept the message but the connection dropped before its answer
    postmark.script.append(accepted_then(CLOSE))
    assert provider.send(MESSAGE).status == "unknown"
    [message_id] = postmark.kept

    # When the reconcile timer asks, with what cartflow knows (no MessageID)
    result = provider.lookup(sent())

    # Then Postmark's search has it: accepted, with the MessageID receipts will name
    assert result == SendResult.accepted("postmark", message_id)
    assert postmark.seen[-1].query["metadata_delivery_id"] == "d-42"


def test_lookup_with_a_message_id_asks_for_that_message(
    postmark: FakePostmark, provider: PostmarkProvider
) -> None:
    provider.send(MESSAGE)
    [message_id] = postmark.kept
    assert provider.lookup(sent(message_id)) == SendResult.accepted("postmark", message_id)
    assert postmark.seen[-1].path == f"/messages/outbound/{message_id}/details"


@pytest.mark.parametrize(
    ("answered_at", "expected"),
    [
        (SENT_AT + SEARCH_SETTLE, "permanent"),
        (SENT_AT + timedelta(hours=3), "permanent"),
        (SENT_AT + SEARCH_SETTLE - timedelta(seconds=1), None),
        (SENT_AT + timedelta(minutes=1), None),
    ],
)
def test_a_message_postmark_does_not_list_was_never_sent_once_the_search_has_settled(
    postmark: FakePostmark,
    provider: PostmarkProvider,
    answered_at: datetime,
    expected: str | None,
) -> None:
    # Given Postmark, by its own clock, answers the search at answered_at and lists nothing
    postmark.date = answered_at

    result = provider.lookup(sent())

    # Then: never sent once the search can be trusted, "cannot tell yet" before
    if expected is None:
        assert result is None
    else:
        assert result is not None and result.status == "permanent"
        assert result.reason == "Postmark has no message with this delivery id: it was never sent"
        assert not result.invalid_contact and not result.consent_withdrawn


def test_a_search_without_a_date_cannot_tell(
    postmark: FakePostmark, provider: PostmarkProvider
) -> None:
    postmark.date = "soon"
    assert provider.lookup(sent()) is None
    postmark.date = "Wed, 02 Dec 2026 18:00:00"  # no zone: not an HTTP date
    assert provider.lookup(sent()) is None


@pytest.mark.parametrize(
    "reply", [Reply(500, {}), Reply(200, {"Messages": "no"}), Reply(401, {"ErrorCode": 10}), CLOSE]
)
def test_lookup_cannot_tell_without_a_search(
    postmark: FakePostmark, provider: PostmarkProvider, reply: Reply | str
) -> None:
    postmark.date = SENT_AT + timedelta(days=1)
    postmark.script.append(reply)
    assert provider.lookup(sent()) is None


def test_postmark_can_always_be_asked(provider: PostmarkProvider) -> None:
    assert provider.can_look_up()


# -- webhooks -------------------------------------------------------------------------------
def test_the_webhook_for_a_send_names_the_message_id_the_send_got(
    postmark: FakePostmark, provider: PostmarkProvider
) -> None:
    # Given a message Postmark accepted
    accepted = provider.send(MESSAGE)

    # When Postmark reports its delivery, the header name as a proxy may capitalise it
    record = {**delivery(), "MessageID": accepted.provider_message_id}
    [receipt] = provider.parse_receipt(webhook(record, header="Authorization"))

    # Then the receipt names it as the delivery row does
    assert receipt.provider_message_id == accepted.provider_message_id
    assert receipt.status is ReceiptStatus.DELIVERED


# -- settings -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("drop", "add", "expected"),
    [
        ("server_token", {}, ["provider 'postmark' needs setting 'server_token'"]),
        ("sender", {}, ["provider 'postmark' needs setting 'sender'"]),
        (
            None,
            {"webhook_username": HOOK_USER},
            [
                "provider 'postmark' needs both 'webhook_username' and 'webhook_password', "
                "or neither"
            ],
        ),
        (
            None,
            {"webhook_password": HOOK_PASSWORD},
            [
                "provider 'postmark' needs both 'webhook_username' and 'webhook_password', "
                "or neither"
            ],
        ),
        (
            None,
            {"track_links": "Always"},
            [
                "setting 'track_links' of provider 'postmark' should be 'None', "
                "'HtmlAndText', 'HtmlOnly' or 'TextOnly'"
            ],
        ),
        (
            None,
            {"track_opens": "yes"},
            ["setting 'track_opens' of provider 'postmark' must be true or false"],
        ),
        (
            None,
            {"sender": "not an address"},
            [
                "setting 'sender' of provider 'postmark' must be an email address, "
                "e.g. shop@example.com or Shop <shop@example.com>"
            ],
        ),
        (
            None,
            {"server_token": 12345},
            ["setting 'server_token' of provider 'postmark' must be text"],
        ),
        (None, {"api_key": TOKEN}, None),
        (None, {}, []),
    ],
)
def test_settings_problems_name_the_setting(
    drop: str | None, add: dict[str, Any], expected: list[str] | None
) -> None:
    settings = {**options("https://api.postmarkapp.com"), **add}
    if drop:
        del settings[drop]
    found = PostmarkProvider.validate(settings)
    if expected is None:  # an unknown setting: named, with the known ones
        [line] = found
        assert line.startswith("unknown setting 'api_key' for provider 'postmark'")
    else:
        assert found == expected
    assert not any(TOKEN in line or HOOK_PASSWORD in line for line in found)


def test_bad_settings_refuse_to_build_and_secrets_are_never_shown(
    build: Callable[..., PostmarkProvider],
) -> None:
    with pytest.raises(ProviderSettingsError) as refused:
        PostmarkProvider(server_token=TOKEN)
    assert TOKEN not in str(refused.value)
    provider = build(
        server_token=TOKEN,
        sender=SENDER,
        webhook_username=HOOK_USER,
        webhook_password=HOOK_PASSWORD,
    )
    shown = repr(provider)
    assert TOKEN not in shown and HOOK_PASSWORD not in shown and HOOK_USER not in shown
    assert "'server_token': '***'" in shown
    assert PostmarkProvider.secret() == {"server_token", "webhook_username", "webhook_password"}
    assert PostmarkProvider.channels == ("email",)
    defaults = provider.options
    assert (defaults.message_stream, defaults.track_opens, defaults.track_links) == (
        "outbound",
        False,
        "None",
    )
    assert (defaults.inline_css, defaults.timeout) == (True, 10.0)
    assert defaults.base_url == "https://api.postmarkapp.com"


# -- the documented configuration -----------------------------------------------------------
def _doc_snippet() -> str:
    doc = (ROOT / "docs" / "providers-postmark.md").read_text(encoding="utf-8")
    [snippet] = re.findall(r"^```yaml\n(.*?)^```", doc, re.MULTILINE | re.DOTALL)
    return str(snippet)


def test_the_documented_snippet_is_a_working_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the providers: snippet of docs/providers-postmark.md, its variables set
    email = _doc_snippet().removeprefix("providers:\n")
    monkeypatch.setenv("POSTMARK_SERVER_TOKEN", TOKEN)
    monkeypatch.setenv("POSTMARK_WEBHOOK_USER", HOOK_USER)
    monkeypatch.setenv("POSTMARK_WEBHOOK_PASSWORD", HOOK_PASSWORD)
    assert "  email: {type: console}\n" in MAIN
    main = write_config(tmp_path, {"scenarios.yaml": ("  email: {type: console}\n", email)})

    # When it is loaded with the postmark type known (registered by the lead in BUILT_IN)
    types = {**validators(), "postmark": PostmarkProvider.validate}
    config = load_config(main, provider_types=types)
    spec = config.settings.providers["email"]
    assert spec.type == "postmark"
    provider = PostmarkProvider(**spec.options())

    # Then it builds, with the secrets from the environment
    assert provider.options.server_token.get_secret_value() == TOKEN
    assert provider.webhook_auth == WebhookAuth(HOOK_USER, HOOK_PASSWORD)
    assert YAML(typ="safe").load(_doc_snippet())["providers"]["email"]["track_links"] == "None"
    provider.close()
