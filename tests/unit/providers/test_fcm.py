"""The FCM push provider against a fake Google on loopback (real sockets, no patching): the
OAuth token exchange (the assertion's RS256 signature checked with the service account's
public key), the send request, token caching across threads, and what each answer means."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from structlog.testing import capture_logs

from cartflow.engine.scenario.loader import load_config
from cartflow.engine.sending import Message, SendResult, Sent
from cartflow.providers.base import ProviderSettingsError
from cartflow.providers.fcm import (
    ERROR_CODES,
    HTTP_STATUSES,
    INVALID_TOKEN,
    FcmProvider,
)
from cartflow.providers.registry import validators

from ..scenario.sample_config import MAIN, write_config

ROOT = Path(__file__).resolve().parents[3]
PROJECT = "shop-push-7"
EMAIL = "cartflow@shop-push-7.iam.gserviceaccount.com"
KEY_ID = "k-0123456789abcdef"
DEVICE = "fcm-device-token-eX4mPlE:APA91bHxQ7wZ"
CART = "c-981"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PARTS = {"title": "Your cart", "body": "2 items are waiting", "url": "https://shop.example/c"}
META = {"cartflow_delivery_id": "d-42", "cart_id": CART, "scenario": "cart", "step": "push"}
MESSAGE = Message("d-42", "k-42", "push", DEVICE, dict(PARTS), "en", dict(META))


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = pem(KEY)


def key_file(key: rsa.RSAPrivateKey = KEY, **changes: Any) -> str:
    """A service-account key file as Google gives it (``None`` drops a field)."""
    found = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": KEY_ID,
        "private_key": pem(key),
        "client_email": EMAIL,
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    found.update(changes)
    return json.dumps({k: v for k, v in found.items() if v is not None})


# -- a fake Google: the token endpoint and FCM ----------------------------------------------
@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


#: Read the request, then close the connection without answering.
CLOSE = "close"
#: Read the request, then answer nothing until the test ends.
HANG = "hang"


class Clock:
    """The provider's clock and the fake's: starts at the real time, moved by tests."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class FakeGoogle:
    """``POST /token`` checks the assertion as Google does and issues access tokens;
    ``POST /v1/projects/{p}/messages:send`` takes a valid one — each answers from its
    script first. Every request is recorded."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.seen: list[Seen] = []
        self.token_script: list[Reply | str] = []
        self.send_script: list[Reply | str] = []
        self.issued: list[str] = []
        self.valid: set[str] = set()
        self.token_delay = 0.0
        self.release = threading.Event()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with fake.lock:
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
        self.token_url = f"{self.url}/token"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def answer(self, seen: Seen) -> Reply | str:
        if seen.path == "/token":
            time.sleep(self.token_delay)
            with self.lock:
                scripted = self.token_script.pop(0) if self.token_script else None
            return scripted or self.token(seen)
        with self.lock:
            scripted = self.send_script.pop(0) if self.send_script else None
        return scripted or self.message(seen)

    def token(self, seen: Seen) -> Reply:
        """Google's checks of a JWT-bearer grant, against the account's public key."""
        form = seen.form
        if form.get("grant_type") != GRANT:
            return Reply(400, {"error": "unsupported_grant_type"})
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                KEY.public_key(),
                algorithms=["RS256"],
                audience=self.token_url,
                options={"verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidTokenError:
            return Reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT"})
        now = self.clock()
        if not (
            claims["iss"] == EMAIL
            and claims["scope"] == SCOPE
            and claims["iat"] <= now + 1
            and now <= claims["exp"] <= claims["iat"] + 3600
        ):
            return Reply(400, {"error": "invalid_grant", "error_description": "Bad claims"})
        with self.lock:
            value = f"ya29.access-{len(self.issued) + 1}"
            self.issued.append(value)
            self.valid.add(value)
        return Reply(200, {"access_token": value, "expires_in": 3599, "token_type": "Bearer"})

    def message(self, seen: Seen) -> Reply:
        bearer = seen.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in self.valid:
            return fcm_error(401, "UNAUTHENTICATED", None)
        return Reply(200, {"name": f"projects/{PROJECT}/messages/0:{len(self.sends())}"})

    def sends(self) -> list[Seen]:
        return [s for s in self.seen if s.path != "/token"]

    def tokens(self) -> list[Seen]:
        return [s for s in self.seen if s.path == "/token"]

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + 5
        while len(self.sends()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.sends()) >= count


def fcm_error(
    status: int,
    state: str,
    code: str | None,
    message: str = f"Requested entity was not found: {DEVICE}",
    details: list[dict[str, Any]] | None = None,
) -> Reply:
    """FCM's error body (its message quoting the token, to prove it never reaches a reason)."""
    found = list(details or [])
    if code is not None:
        found.append(
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
        )
    return Reply(
        status, {"error": {"code": status, "message": message, "status": state, "details": found}}
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def google(clock: Clock) -> Iterator[FakeGoogle]:
    fake = FakeGoogle(clock)
    fake.thread.start()
    yield fake
    fake.release.set()
    fake.server.shutdown()
    fake.server.server_close()


def options(fake: FakeGoogle | str, **more: Any) -> dict[str, Any]:
    base = fake.url if isinstance(fake, FakeGoogle) else fake
    token = fake.token_url if isinstance(fake, FakeGoogle) else f"{fake}/token"
    return {
        "service_account": key_file(),
        "base_url": base,
        "token_url": token,
        "timeout": 2,
        **more,
    }


@pytest.fixture
def build(clock: Clock) -> Iterator[Callable[..., FcmProvider]]:
    """Builds providers on the test's clock, and closes them when the test ends."""
    built: list[FcmProvider] = []

    def make(client: httpx.Client | None = None, **settings: Any) -> FcmProvider:
        built.append(FcmProvider(client=client, clock=clock, **settings))
        return built[-1]

    yield make
    for provider in built:
        provider.close()


@pytest.fixture
def provider(google: FakeGoogle, build: Callable[..., FcmProvider]) -> FcmProvider:
    return build(**options(google))


SECRETS = (DEVICE, "ya29.access", "BEGIN PRIVATE KEY", PRIVATE_PEM[40:80])


def assert_clean(text: str | None) -> None:
    assert text
    for secret in SECRETS:
        assert secret not in text


# -- the request ----------------------------------------------------------------------------
def test_a_send_exchanges_a_signed_assertion_then_posts_fcm_s_v1_message(
    google: FakeGoogle, provider: FcmProvider, clock: Clock
) -> None:
    result = provider.send(MESSAGE)

    assert result == SendResult.accepted("fcm", f"projects/{PROJECT}/messages/0:1")
    token, send = google.seen
    # the token request: a JWT-bearer grant whose assertion the fake verified (RS256,
    # the account's key), with Google's claims and the key id in its header
    assert (token.method, token.path) == ("POST", "/token")
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"
    assert set(token.form) == {"grant_type", "assertion"}
    assertion = token.form["assertion"]
    assert jwt.get_unverified_header(assertion) == {"alg": "RS256", "typ": "JWT", "kid": KEY_ID}
    claims = jwt.decode(
        assertion, KEY.public_key(), algorithms=["RS256"], audience=google.token_url
    )
    assert claims == {
        "iss": EMAIL,
        "scope": SCOPE,
        "aud": google.token_url,
        "iat": int(clock.now),
        "exp": int(clock.now) + 3600,
    }
    # the send: FCM's path for the project of the key file, the issued bearer token
    assert (send.method, send.path) == ("POST", f"/v1/projects/{PROJECT}/messages:send")
    assert send.headers["authorization"] == "Bearer ya29.access-1"
    assert send.headers["content-type"] == "application/json"
    collapse = f"cart-{CART}"
    assert send.json == {
        "message": {
            "token": DEVICE,
            "notification": {"title": "Your cart", "body": "2 items are waiting"},
            "data": {"cartflow_delivery_id": "d-42", "cart_id": CART, "url": PARTS["url"]},
            "android": {"ttl": "86400s", "collapse_key": collapse},
            "apns": {
                "headers": {
                    "apns-expiration": str(int(clock.now) + 86400),
                    "apns-collapse-id": collapse,
                }
            },
            "webpush": {"headers": {"TTL": "86400"}, "fcm_options": {"link": PARTS["url"]}},
            "fcm_options": {"analytics_label": "cart-push"},
        }
    }
    assert all(isinstance(v, str) for v in send.json["message"]["data"].values())


def test_without_a_cart_a_url_or_a_scenario_those_fields_are_left_out(
    google: FakeGoogle, build: Callable[..., FcmProvider]
) -> None:
    provider = build(**options(google, ttl=0))
    bare = Message("d-1", "k-1", "push", DEVICE, {"title": "T", "body": "B"}, "en", {})

    assert provider.send(bare).status == "accepted"

    assert google.sends()[0].json == {
        "message": {
            "token": DEVICE,
            "notification": {"title": "T", "body": "B"},
            "data": {"cartflow_delivery_id": "d-1"},
            "android": {"ttl": "0s"},
            "apns": {"headers": {"apns-expiration": "0"}},
            "webpush": {"headers": {"TTL": "0"}},
        }
    }


def test_a_plain_http_url_travels_in_data_but_is_no_web_link(
    google: FakeGoogle, provider: FcmProvider
) -> None:
    message = Message("d-2", "k-2", "push", DEVICE, {**PARTS, "url": "http://shop.example/c"}, "en")
    provider.send(message)
    sent = google.sends()[0].json["message"]
    assert sent["data"]["url"] == "http://shop.example/c"
    assert "fcm_options" not in sent["webpush"]


def test_a_long_cart_id_collapses_by_a_digest_within_apns_s_64_bytes(
    google: FakeGoogle, provider: FcmProvider
) -> None:
    long = "ä" * 80
    provider.send(Message("d-3", "k-3", "push", DEVICE, dict(PARTS), "en", {"cart_id": long}))
    provider.send(Message("d-4", "k-4", "push", DEVICE, dict(PARTS), "en", {"cart_id": long}))
    first, second = (s.json["message"] for s in google.sends())
    key = first["android"]["collapse_key"]
    assert key == second["android"]["collapse_key"] == first["apns"]["headers"]["apns-collapse-id"]
    assert len(key.encode()) <= 64 and re.fullmatch(r"cart-[0-9a-f]{40}", key)


def test_project_id_given_replaces_the_key_file_s(
    google: FakeGoogle, build: Callable[..., FcmProvider]
) -> None:
    build(**options(google, project_id="other-project")).send(MESSAGE)
    assert google.sends()[0].path == "/v1/projects/other-project/messages:send"


def test_an_injected_client_carries_both_requests(google: FakeGoogle, clock: Clock) -> None:
    with httpx.Client(headers={"X-Test": "injected"}) as client:
        provider = FcmProvider(client=client, clock=clock, **options(google))
        assert provider.send(MESSAGE).status == "accepted"
    assert [s.headers["x-test"] for s in google.seen] == ["injected", "injected"]


# -- the access token -----------------------------------------------------------------------
def test_the_access_token_is_kept_across_sends(google: FakeGoogle, provider: FcmProvider) -> None:
    for _ in range(3):
        assert provider.send(MESSAGE).status == "accepted"
    assert len(google.tokens()) == 1
    assert {s.headers["authorization"] for s in google.sends()} == {"Bearer ya29.access-1"}


def test_the_token_is_renewed_five_minutes_before_it_expires(
    google: FakeGoogle, provider: FcmProvider, clock: Clock
) -> None:
    # Given a token that lives 3599 s
    provider.send(MESSAGE)

    # When the clock nears its end, but not within five minutes: still the same token
    clock.now += 3599 - 301
    provider.send(MESSAGE)
    assert len(google.tokens()) == 1

    # Then within the last five minutes a new one is fetched, with a new assertion
    clock.now += 2
    provider.send(MESSAGE)
    assert len(google.tokens()) == 2
    assert google.sends()[-1].headers["authorization"] == "Bearer ya29.access-2"
    claims = jwt.decode(
        google.tokens()[1].form["assertion"],
        KEY.public_key(),
        algorithms=["RS256"],
        audience=google.token_url,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iat"] == int(clock.now)


def test_worker_threads_share_one_token_fetch(google: FakeGoogle, provider: FcmProvider) -> None:
    # Given a slow token endpoint and eight workers sending at once
    google.token_delay = 0.3
    results: list[SendResult] = []
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        results.append(provider.send(MESSAGE))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    # Then one token was fetched, and every send went with it
    assert [r.status for r in results] == ["accepted"] * 8
    assert len(google.tokens()) == 1
    assert len(google.sends()) == 8


def test_a_401_drops_the_token_and_the_send_is_tried_once_more_with_a_new_one(
    google: FakeGoogle, provider: FcmProvider
) -> None:
    # Given a token Google has since revoked
    provider.send(MESSAGE)
    google.valid.clear()

    # When the next send meets FCM's 401
    with capture_logs() as logs:
        result = provider.send(MESSAGE)

    # Then a new token was fetched and the send went again, accepted
    assert result.status == "accepted"
    assert [s.path == "/token" for s in google.seen] == [True, False, False, True, False]
    assert google.sends()[1].headers["authorization"] == "Bearer ya29.access-1"
    assert google.sends()[2].headers["authorization"] == "Bearer ya29.access-2"
    assert {"event": "access_token_dropped", "log_level": "info", "account_scope": SCOPE} in logs
    assert any(e["event"] == "access_token_fetched" for e in logs)
    for entry in logs:
        assert_clean(json.dumps(entry, default=str))


def test_a_stale_401_does_not_drop_the_token_another_thread_already_renewed(
    google: FakeGoogle, provider: FcmProvider
) -> None:
    # Given two workers that both sent with the first token, and one already renewed it
    first = provider.tokens.get()
    provider.tokens.drop(first)
    second = provider.tokens.get()

    # When the other worker's 401 for the first token arrives late
    provider.tokens.drop(first)

    # Then the renewed token is kept: no third fetch
    assert provider.tokens.get() == second == "ya29.access-2"
    assert len(google.tokens()) == 2


def test_a_second_401_is_permanent_and_not_tried_a_third_time(
    google: FakeGoogle, provider: FcmProvider
) -> None:
    google.send_script += [fcm_error(401, "UNAUTHENTICATED", None)] * 2

    result = provider.send(MESSAGE)

    assert result.status == "permanent" and not result.invalid_contact
    assert result.reason == (
        "HTTP 401, FCM UNAUTHENTICATED: authentication failed: check service_account"
    )
    assert len(google.sends()) == 2 and len(google.tokens()) == 2


def test_third_party_auth_error_is_not_our_token_so_nothing_is_refetched(
    google: FakeGoogle, provider: FcmProvider
) -> None:
    google.send_script.append(fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"))
    result = provider.send(MESSAGE)
    assert result.status == "permanent"
    assert len(google.sends()) == 1 and len(google.tokens()) == 1


@pytest.mark.parametrize(
    ("reply", "kind", "reason", "retry_after"),
    [
        (
            Reply(400, {"error": "invalid_grant", "error_description": "Invalid JWT"}),
            "permanent",
            "token endpoint refused the service account (HTTP 400 invalid_grant): "
            "check service_account",
            None,
        ),
        (
            Reply(401, {"error": "unauthorized_client"}),
            "permanent",
            "token endpoint refused the service account (HTTP 401 unauthorized_client): "
            "check service_account",
            None,
        ),
        (
            Reply(503, {}, {"Retry-After": "12"}),
            "retryable",
            "no access token (HTTP 503): nothing was sent",
            12.0,
        ),
        (Reply(429, {}), "retryable", "no access token (HTTP 429): nothing was sent", None),
        (
            Reply(200, {"token_type": "Bearer"}),
            "retryable",
            "no access token (HTTP 200): nothing was sent",
            None,
        ),
        (CLOSE, "retryable", "no access token (RemoteProtocolError): nothing was sent", None),
    ],
)
def test_no_access_token_means_fcm_is_never_asked(
    google: FakeGoogle,
    provider: FcmProvider,
    reply: Reply | str,
    kind: str,
    reason: str,
    retry_after: float | None,
) -> None:
    google.token_script.append(reply)

    result = provider.send(MESSAGE)

    assert (result.status, result.reason, result.retry_after) == (kind, reason, retry_after)
    assert google.sends() == []


def test_an_assertion_signed_with_another_key_is_refused_by_google(
    google: FakeGoogle, build: Callable[..., FcmProvider]
) -> None:
    provider = build(**options(google, service_account=key_file(OTHER_KEY)))
    result = provider.send(MESSAGE)
    assert result.status == "permanent" and "invalid_grant" in str(result.reason)
    assert google.sends() == []


def test_an_unreachable_token_endpoint_is_retryable(
    google: FakeGoogle, nothing_listening: str, build: Callable[..., FcmProvider]
) -> None:
    provider = build(**options(google, token_url=f"{nothing_listening}/token"))
    result = provider.send(MESSAGE)
    assert (result.status, result.reason) == (
        "retryable",
        "no access token (ConnectError): nothing was sent",
    )
    assert google.seen == []


# -- what each answer means -----------------------------------------------------------------
TOKEN_VIOLATION = {
    "@type": "type.googleapis.com/google.rpc.BadRequest",
    "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}],
}
DATA_VIOLATION = {
    "@type": "type.googleapis.com/google.rpc.BadRequest",
    "fieldViolations": [{"field": "message.data[0].value", "description": "Invalid value"}],
}
TOKEN_MESSAGE = "The registration token is not a valid FCM registration token"

#: (HTTP status, error status, FCM errorCode, FCM message, other details, result,
#: invalid contact, reason) — the table of docs/providers-fcm.md, written out here
#: independently of the module's.
ROWS: list[tuple[int, str, str | None, str, list[dict[str, Any]], str, bool, str]] = [
    (404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.", [], "permanent", True,
     "HTTP 404, FCM UNREGISTERED: the registration token is no longer valid"),
    (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch", [], "permanent", True,
     "HTTP 403, FCM SENDER_ID_MISMATCH: the token belongs to another Firebase project"),
    (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", TOKEN_MESSAGE, [], "permanent", True,
     "HTTP 400, FCM INVALID_ARGUMENT: not a valid FCM registration token"),
    (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid argument", [TOKEN_VIOLATION],
     "permanent", True, "HTTP 400, FCM INVALID_ARGUMENT: not a valid FCM registration token"),
    (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Message is too big", [], "permanent", False,
     "HTTP 400, FCM INVALID_ARGUMENT: FCM refused the message as invalid"),
    (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid value", [DATA_VIOLATION],
     "permanent", False, "HTTP 400, FCM INVALID_ARGUMENT: FCM refused the message as invalid"),
    (401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS", [], "permanent",
     False, "HTTP 401, FCM THIRD_PARTY_AUTH_ERROR: the project's APNs or web push credential "
     "failed"),
    (401, "UNAUTHENTICATED", "APNS_AUTH_ERROR", "Auth error from APNS", [], "permanent", False,
     "HTTP 401, FCM APNS_AUTH_ERROR: the project's APNs credential failed"),
    (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded", [], "retryable", False,
     "HTTP 429, FCM QUOTA_EXCEEDED: sending quota exceeded"),
    (503, "UNAVAILABLE", "UNAVAILABLE", "The service is unavailable", [], "retryable", False,
     "HTTP 503, FCM UNAVAILABLE: FCM unavailable"),
    (500, "INTERNAL", "INTERNAL", "Internal error", [], "retryable", False,
     "HTTP 500, FCM INTERNAL: FCM internal error"),
    # no FCM error code: the HTTP status decides
    (400, "INVALID_ARGUMENT", None, "Invalid JSON payload", [DATA_VIOLATION], "permanent", False,
     "HTTP 400, FCM INVALID_ARGUMENT"),
    (400, "INVALID_ARGUMENT", None, "Invalid argument", [TOKEN_VIOLATION], "permanent", True,
     "HTTP 400, FCM INVALID_ARGUMENT: not a valid FCM registration token"),
    (403, "PERMISSION_DENIED", None, "Permission denied", [], "permanent", False,
     "HTTP 403, FCM PERMISSION_DENIED: permission denied: check the service account's role "
     "and project_id"),
    (404, "NOT_FOUND", None, "Project not found", [], "permanent", False,
     "HTTP 404, FCM NOT_FOUND: no such project: check project_id"),
    (429, "RESOURCE_EXHAUSTED", None, "Too many requests", [], "retryable", False,
     "HTTP 429, FCM RESOURCE_EXHAUSTED: too many requests"),
    (502, "UNAVAILABLE", None, "Bad gateway", [], "retryable", False,
     "HTTP 502, FCM UNAVAILABLE: FCM unavailable"),
    (504, "DEADLINE_EXCEEDED", None, "Deadline", [], "retryable", False,
     "HTTP 504, FCM DEADLINE_EXCEEDED: FCM unavailable"),
    (400, "FAILED_PRECONDITION", "UNSPECIFIED_ERROR", "?", [], "permanent", False,
     "HTTP 400, FCM UNSPECIFIED_ERROR"),
]  # fmt: skip


def test_every_row_of_the_module_s_tables_is_a_row_here() -> None:
    codes = {code for _, _, code, *_ in ROWS}
    assert set(ERROR_CODES) <= codes
    assert any(reason.endswith(INVALID_TOKEN[1]) for *_, reason in ROWS)
    statuses = {status for status, _, code, *_ in ROWS if code is None}
    assert set(HTTP_STATUSES) - {401} <= statuses  # 401: the two tests above


@pytest.mark.parametrize(
    ("status", "state", "code", "text", "details", "kind", "invalid", "reason"), ROWS
)
def test_an_error_answer_maps_as_the_table_says(
    google: FakeGoogle,
    provider: FcmProvider,
    status: int,
    state: str,
    code: str | None,
    text: str,
    details: list[dict[str, Any]],
    kind: str,
    invalid: bool,
    reason: str,
) -> None:
    google.send_script.append(fcm_error(status, state, code, f"{text} ({DEVICE})", details))

    result = provider.send(MESSAGE)

    assert (result.status, result.invalid_contact, result.reason) == (kind, invalid, reason)
    assert result.provider == "fcm" and result.provider_message_id is None
    assert not result.consent_withdrawn
    assert len(google.sends()) == 1
    assert_clean(result.reason)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), 60.0),
        (Reply(**{**vars(fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")),
                  "headers": {"Retry-After": "7"}}), 7.0),
        (Reply(**{**vars(fcm_error(503, "UNAVAILABLE", "UNAVAILABLE")),
                  "headers": {"Retry-After": "30"}}), 30.0),
        (fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"), None),
        (Reply(**{**vars(fcm_error(500, "INTERNAL", "INTERNAL")),
                  "headers": {"Retry-After": "soon"}}), None),
        (Reply(429, {}, {"Retry-After": "1.5"}), 1.5),
    ],
)  # fmt: skip
def test_retry_after_is_honoured_and_a_quota_waits_a_minute_without_one(
    google: FakeGoogle, provider: FcmProvider, reply: Reply, expected: float | None
) -> None:
    google.send_script.append(reply)
    result = provider.send(MESSAGE)
    assert (result.status, result.retry_after) == ("retryable", expected)


def test_a_connection_closed_after_the_send_left_is_unknown(
    google: FakeGoogle, provider: FcmProvider
) -> None:
    google.send_script.append(CLOSE)
    result = provider.send(MESSAGE)
    assert (result.status, result.reason) == (
        "unknown",
        "RemoteProtocolError after the request left",
    )
    assert len(google.sends()) == 1


def test_fcm_never_answering_is_unknown(
    google: FakeGoogle, build: Callable[..., FcmProvider]
) -> None:
    google.send_script.append(HANG)
    result = build(**options(google, timeout=0.3)).send(MESSAGE)
    assert (result.status, result.reason) == ("unknown", "ReadTimeout after the request left")


def test_fcm_unreachable_is_retryable(
    google: FakeGoogle, nothing_listening: str, build: Callable[..., FcmProvider]
) -> None:
    provider = build(**options(google, base_url=nothing_listening))
    result = provider.send(MESSAGE)
    assert (result.status, result.reason) == ("retryable", "ConnectError: nothing was sent")


def test_no_free_connection_in_the_pool_is_retryable(google: FakeGoogle, clock: Clock) -> None:
    # Given a client with one connection, taken by a send FCM does not answer yet
    client = httpx.Client(
        timeout=httpx.Timeout(5, pool=0.2), limits=httpx.Limits(max_connections=1)
    )
    provider = FcmProvider(client=client, clock=clock, **options(google))
    provider.tokens.get()
    google.send_script.append(HANG)
    first: list[SendResult] = []
    waiting = threading.Thread(target=lambda: first.append(provider.send(MESSAGE)))
    waiting.start()
    google.wait_for(1)

    # When another send finds no connection
    result = provider.send(MESSAGE)

    # Then it never left and is retryable; the first is unknown once FCM hangs up
    assert result.status == "retryable" and "PoolTimeout" in str(result.reason)
    assert len(google.sends()) == 1
    google.release.set()
    waiting.join(5)
    assert first[0].status == "unknown"
    provider.close()


def test_unknown_is_final_fcm_has_no_lookup(provider: FcmProvider) -> None:
    assert not provider.can_look_up()
    assert provider.status("projects/p/messages/1") is None
    assert provider.lookup(Sent("d-42", None, "push", DEVICE, datetime.now(UTC))) is None


# -- settings and privacy -------------------------------------------------------------------
def problems_of(**changes: Any) -> list[str]:
    settings = {**options("https://fcm.googleapis.com"), **changes}
    return FcmProvider.validate({k: v for k, v in settings.items() if v is not None})


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"service_account": None}, ["provider 'fcm' needs setting 'service_account'"]),
        (
            {"service_account": "{not json"},
            ["setting 'service_account' of provider 'fcm' is not JSON: give the "
             "service-account key file's content"],
        ),
        (
            {"service_account": "[1, 2]"},
            ["setting 'service_account' of provider 'fcm' is not a JSON object: give the "
             "service-account key file's content"],
        ),
        (
            {"service_account": key_file(client_email=None)},
            ["setting 'service_account' of provider 'fcm' has no 'client_email'"],
        ),
        (
            {"service_account": key_file(private_key=None)},
            ["setting 'service_account' of provider 'fcm' has no 'private_key'"],
        ),
        (
            {"service_account": key_file(private_key="-----BEGIN PRIVATE KEY-----\nAAAA\n")},
            ["setting 'service_account' of provider 'fcm' has a 'private_key' that is not a "
             "PEM private key"],
        ),
        (
            {"service_account": key_file(project_id=None)},
            ["provider 'fcm' needs setting 'project_id' (the service account names no project)"],
        ),
        ({"service_account": key_file(project_id=None), "project_id": PROJECT}, []),
        (
            {"ttl": 2_419_201},
            ["setting 'ttl' of provider 'fcm' should be less than or equal to 2419200"],
        ),
        (
            {"token_url": "oauth2.googleapis.com/token"},
            ["setting 'token_url' of provider 'fcm' must be an http:// or https:// URL"],
        ),
        (
            {"service_account": None, "service_acount": key_file()},
            ["provider 'fcm' needs setting 'service_account'",
             "unknown setting 'service_acount' for provider 'fcm' — did you mean "
             "'service_account'?"],
        ),
    ],
)  # fmt: skip
def test_settings_problems_name_the_setting_never_the_key(
    changes: dict[str, Any], expected: list[str]
) -> None:
    found = problems_of(**changes)
    assert found == expected
    for line in found:
        assert_clean(line.replace("BEGIN PRIVATE KEY", ""))
        assert EMAIL not in line


def test_an_ec_key_is_not_a_service_account_key() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert problems_of(service_account=key_file(private_key=ec_pem.decode())) == [
        "setting 'service_account' of provider 'fcm' has a 'private_key' that is not an RSA key"
    ]


def test_the_key_file_is_secret_and_never_shown(build: Callable[..., FcmProvider]) -> None:
    with pytest.raises(ProviderSettingsError) as refused:
        FcmProvider(service_account=key_file(client_email=None))
    assert_clean(str(refused.value))
    provider = build(**options("https://fcm.googleapis.com"))
    assert FcmProvider.secret() == {"service_account"}
    assert "'service_account': '***'" in repr(provider)
    assert_clean(repr(provider))
    assert repr(provider.account) == "ServiceAccount(***)"
    assert DEVICE not in repr(MESSAGE)


# -- the documented configuration -----------------------------------------------------------
def test_the_documented_snippet_is_a_working_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the providers: snippet of docs/providers-fcm.md, its variable set to a key file
    doc = (ROOT / "docs" / "providers-fcm.md").read_text(encoding="utf-8")
    [snippet] = re.findall(r"^```yaml\n(.*?)^```", doc, re.MULTILINE | re.DOTALL)
    push = snippet.removeprefix("providers:\n")
    monkeypatch.setenv("FCM_SERVICE_ACCOUNT", key_file())
    assert "  push: {type: console}\n" in MAIN
    main = write_config(tmp_path, {"scenarios.yaml": ("  push: {type: console}\n", push)})

    # When it is validated (fcm known to the loader as the registry will know it)
    config = load_config(main, provider_types={**validators(), "fcm": FcmProvider.validate})

    # Then push goes through FCM with the key file from the environment
    spec = config.settings.providers["push"]
    assert spec.type == "fcm"
    provider = FcmProvider(**spec.options())
    assert provider.account.client_email == EMAIL
    assert provider.url == f"https://fcm.googleapis.com/v1/projects/{PROJECT}/messages:send"
    provider.close()
