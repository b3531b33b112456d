"""The Web Push provider against a fake push service on loopback (real sockets, no
patching). The fake does what a browser's push service and the browser do: it checks the
VAPID JWT's ES256 signature with the key in the header and the key the subscription was
made for, and it decrypts the body with the subscription's private key — RFC 8291 written
out here with ``cryptography`` alone, checked against the RFC's own example."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cartflow.engine.scenario.loader import load_config
from cartflow.engine.sending import Message, SendResult, Sent
from cartflow.providers.base import ProviderSettingsError
from cartflow.providers.registry import validators
from cartflow.providers.webpush import (
    HTTP_STATUSES,
    MAX_PAYLOAD,
    TOPIC,
    WebPushProvider,
    encrypt,
    public_key,
    subscription,
    topic,
)

from ..scenario.sample_config import MAIN, write_config

ROOT = Path(__file__).resolve().parents[3]
SUBJECT = "mailto:push@shop.example"
CART = "c-981"
PARTS = {"title": "Your cart", "body": "2 items are waiting", "url": "https://shop.example/c"}
META = {"cartflow_delivery_id": "d-42", "cart_id": CART, "scenario": "cart", "step": "push"}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def point(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def raw_private(key: ec.EllipticCurvePrivateKey) -> str:
    return b64(key.private_numbers().private_value.to_bytes(32, "big"))


VAPID = ec.generate_private_key(ec.SECP256R1())
VAPID_RAW = raw_private(VAPID)
OTHER_VAPID = ec.generate_private_key(ec.SECP256R1())


# -- the browser's side: RFC 8291 §3.4 with RFC 8188's record format ------------------------
def decrypt(body: bytes, receiver: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    """What the browser does with a push message's body (one record)."""
    salt, size, id_length = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    sender = body[21 : 21 + id_length]
    record = body[21 + id_length :]
    assert id_length == 65 and len(record) <= size
    shared = receiver.exchange(
        ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender)
    )
    info = b"WebPush: info\x00" + point(receiver) + sender
    ikm = HKDF(hashes.SHA256(), 32, salt=auth, info=info).derive(shared)
    cek = HKDF(hashes.SHA256(), 16, salt=salt, info=b"Content-Encoding: aes128gcm\x00").derive(ikm)
    nonce = HKDF(hashes.SHA256(), 12, salt=salt, info=b"Content-Encoding: nonce\x00").derive(ikm)
    padded = AESGCM(cek).decrypt(nonce, record, None).rstrip(b"\x00")
    assert padded.endswith(b"\x02")  # the last record's delimiter
    return padded[:-1]


#: RFC 8291 Appendix A, "Encryption Example" (keys, salt and body in base64url).
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC = {
    "as_private": "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw",
    "as_public": "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8w"
    "EqKK6PBru3jl7A8",
    "ua_private": "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94",
    "ua_public": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZ"
    "GH6SRpkNtoIAiw4",
    "salt": "DGv6ra1nlYgDCS1FRnbzlw",
    "auth": "BTBZMqHH6r4Tts7J_aSIgg",
    "body": (
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vC"
        "YLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXL"
        "WyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
    ),
}


def rfc_key(name: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(unb64(RFC[name]), "big"), ec.SECP256R1())


def test_the_browser_side_decrypts_the_rfc_example() -> None:
    ua = rfc_key("ua_private")
    assert b64(point(ua)) == RFC["ua_public"]
    assert decrypt(unb64(RFC["body"]), ua, unb64(RFC["auth"])) == RFC_PLAINTEXT


def test_the_provider_s_encryption_gives_the_rfc_example_byte_for_byte() -> None:
    target = subscription(
        json.dumps(
            {
                "endpoint": "https://push.example/x",
                "keys": {"p256dh": RFC["ua_public"], "auth": RFC["auth"]},
            }
        )
    )
    sender = rfc_key("as_private")
    assert b64(point(sender)) == RFC["as_public"]
    body = encrypt(RFC_PLAINTEXT, target, salt=unb64(RFC["salt"]), sender=sender)
    assert b64(body) == RFC["body"]


# -- a fake push service --------------------------------------------------------------------
@dataclass
class Browser:
    """A subscription as a browser holds it: its private key and auth secret."""

    private: ec.EllipticCurvePrivateKey
    auth: bytes
    #: The applicationServerKey it subscribed with (the VAPID public key).
    server_key: bytes
    endpoint: str = ""

    def address(self, **changes: Any) -> str:
        """The subscription's ``toJSON()`` text: the push contact's address."""
        found = {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64(point(self.private)), "auth": b64(self.auth)},
        }
        found.update(changes)
        return json.dumps(found)


@dataclass
class Seen:
    """One request the fake received, with what it made of it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: The VAPID JWT's claims, once its signature checked out (else None).
    claims: dict[str, Any] | None = None
    #: The decrypted payload (None if it could not be decrypted).
    payload: Any = None


@dataclass
class Reply:
    status: int = 201
    headers: dict[str, str] = field(default_factory=dict)


#: Read the request, then close the connection without answering.
CLOSE = "close"
#: Read the request, then answer nothing until the test ends.
HANG = "hang"


class FakePushService:
    """``POST /push/{id}`` for the subscriptions it made: 403 unless the VAPID JWT is
    signed by the key the subscription was made for and is for this origin, 400 unless
    the body decrypts; then the script's reply, else 201 with a ``Location``. An unknown
    subscription is 410 Gone. Every request is recorded."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.script: list[Reply | str] = []
        self.browsers: dict[str, Browser] = {}
        self.release = threading.Event()
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
                fake.seen.append(seen)
                reply = fake.answer(seen)
                if reply == HANG:
                    fake.release.wait(10)
                if isinstance(reply, str):
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                self.send_header("Content-Length", "0")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def subscribe(self, server_key: ec.EllipticCurvePrivateKey = VAPID) -> Browser:
        """A new subscription, as ``pushManager.subscribe()`` makes one."""
        name = b64(os.urandom(12))
        browser = Browser(
            ec.generate_private_key(ec.SECP256R1()), os.urandom(16), point(server_key)
        )
        browser.endpoint = f"{self.url}/push/{name}"
        self.browsers[f"/push/{name}"] = browser
        return browser

    def answer(self, seen: Seen) -> Reply | str:
        browser = self.browsers.get(seen.path)
        if browser is None:
            return Reply(410)
        seen.claims = self.vapid(seen.headers.get("authorization", ""), browser)
        if seen.claims is None:
            return Reply(403)
        try:
            seen.payload = json.loads(decrypt(seen.body, browser.private, browser.auth))
        except (InvalidTag, AssertionError, ValueError):
            return Reply(400)
        if self.script:
            return self.script.pop(0)
        return Reply(201, {"Location": f"{self.url}/m/{len(self.seen)}"})

    def vapid(self, header: str, browser: Browser) -> dict[str, Any] | None:
        """RFC 8292's checks: ``vapid t=<JWT>, k=<key>``, ``k`` the subscription's server
        key, the JWT ES256-signed by it, for this origin, expiring within 24 hours."""
        scheme, _, params = header.partition(" ")
        values = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        if scheme.lower() != "vapid" or unb64(values.get("k", "")) != browser.server_key:
            return None
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), browser.server_key)
        try:
            claims: dict[str, Any] = jwt.decode(
                values.get("t", ""), key, algorithms=["ES256"], audience=self.url
            )
        except jwt.InvalidTokenError:
            return None
        if claims["exp"] > time.time() + 24 * 3600 or not claims.get("sub"):
            return None
        return claims


@pytest.fixture
def push() -> Iterator[FakePushService]:
    fake = FakePushService()
    fake.thread.start()
    yield fake
    fake.release.set()
    fake.server.shutdown()
    fake.server.server_close()


def options(**more: Any) -> dict[str, Any]:
    return {"vapid_private_key": VAPID_RAW, "vapid_subject": SUBJECT, "timeout": 2, **more}


@pytest.fixture
def build() -> Iterator[Callable[..., WebPushProvider]]:
    """Builds providers that allow the fake's plain-http endpoints; closes them after."""
    built: list[WebPushProvider] = []

    def make(client: httpx.Client | None = None, **settings: Any) -> WebPushProvider:
        built.append(WebPushProvider(client=client, allow_http=True, **settings))
        return built[-1]

    yield make
    for provider in built:
        provider.close()


@pytest.fixture
def provider(build: Callable[..., WebPushProvider]) -> WebPushProvider:
    return build(**options())


@pytest.fixture
def browser(push: FakePushService) -> Browser:
    return push.subscribe()


def message(address: str, parts: dict[str, str] | None = None, **meta: Any) -> Message:
    return Message("d-42", "k-42", "push", address, parts or dict(PARTS), "en", {**META, **meta})


def assert_clean(text: str | None, browser: Browser) -> None:
    assert text
    for secret in (
        browser.endpoint,
        browser.endpoint.rsplit("/", 1)[1],
        b64(browser.auth),
        b64(point(browser.private))[:20],
        VAPID_RAW,
    ):
        assert secret not in text


# -- the request ----------------------------------------------------------------------------
def test_a_send_is_an_encrypted_vapid_signed_push_the_browser_can_read(
    push: FakePushService, provider: WebPushProvider, browser: Browser
) -> None:
    before = int(time.time())
    result = provider.send(message(browser.address()))

    [seen] = push.seen
    assert result == SendResult.accepted("webpush", f"{push.url}/m/1")
    assert (seen.method, seen.path) == ("POST", browser.endpoint.removeprefix(push.url))
    assert seen.headers["content-encoding"] == "aes128gcm"
    assert seen.headers["content-type"] == "application/octet-stream"
    assert seen.headers["ttl"] == "86400"
    assert seen.headers["urgency"] == "normal"
    assert seen.headers["topic"] == topic(CART)
    # the browser decrypted what cartflow sent
    assert seen.payload == {
        "title": "Your cart",
        "body": "2 items are waiting",
        "url": "https://shop.example/c",
        "cartflow_delivery_id": "d-42",
        "cart_id": CART,
    }
    # and the VAPID JWT verified with the key the subscription was made for
    assert seen.claims is not None
    assert seen.claims["aud"] == push.url and seen.claims["sub"] == SUBJECT
    assert before + 12 * 3600 <= seen.claims["exp"] <= int(time.time()) + 12 * 3600
    assert re.fullmatch(r"vapid t=[\w-]+\.[\w-]+\.[\w-]+,k=[\w-]+", seen.headers["authorization"])
    token = seen.headers["authorization"].split("t=", 1)[1].split(",")[0]
    assert jwt.get_unverified_header(token) == {"typ": "JWT", "alg": "ES256"}
    assert public_key(provider.vapid) == b64(point(VAPID))


def test_the_body_is_really_encrypted_for_that_browser_alone(
    push: FakePushService, provider: WebPushProvider, browser: Browser
) -> None:
    provider.send(message(browser.address()))
    provider.send(message(browser.address()))
    first, second = (s.body for s in push.seen)

    assert b"Your cart" not in first and b"d-42" not in first
    assert first[:16] != second[:16] and first[21:86] != second[21:86]  # new salt and key
    assert int.from_bytes(first[16:20], "big") == 4096
    assert json.loads(decrypt(first, browser.private, browser.auth))["title"] == "Your cart"
    stranger = push.subscribe()
    with pytest.raises(InvalidTag):
        decrypt(first, stranger.private, stranger.auth)
    with pytest.raises(InvalidTag):
        decrypt(first, browser.private, os.urandom(16))


def test_a_key_other_than_the_subscription_s_is_refused_by_the_push_service(
    push: FakePushService, build: Callable[..., WebPushProvider], browser: Browser
) -> None:
    provider = build(**options(vapid_private_key=raw_private(OTHER_VAPID)))
    result = provider.send(message(browser.address()))
    assert [s.claims for s in push.seen] == [None]
    assert (result.status, result.reason) == (
        "permanent",
        "HTTP 403: the push service refused the VAPID key: check vapid_private_key",
    )


def test_the_topic_is_one_per_cart_and_fits_rfc_8030(
    push: FakePushService, provider: WebPushProvider, browser: Browser
) -> None:
    for cart in (CART, CART, "c-982", "ünïcødé cart #1 with a long id" * 4):
        provider.send(message(browser.address(), cart_id=cart))
    topics = [s.headers["topic"] for s in push.seen]
    assert topics[0] == topics[1] != topics[2]
    assert all(TOPIC.fullmatch(t) and len(t) == 32 for t in topics)
    assert all(CART not in t for t in topics)


def test_without_a_cart_or_a_url_neither_is_sent(
    push: FakePushService, provider: WebPushProvider, browser: Browser
) -> None:
    bare = Message("d-1", "k-1", "push", browser.address(), {"title": "T", "body": "B"}, "en")
    assert provider.send(bare).status == "accepted"
    [seen] = push.seen
    assert "topic" not in seen.headers
    assert seen.payload == {"title": "T", "body": "B", "cartflow_delivery_id": "d-1"}


def test_ttl_and_urgency_are_the_settings(
    push: FakePushService, build: Callable[..., WebPushProvider], browser: Browser
) -> None:
    build(**options(ttl=600, urgency="high")).send(message(browser.address()))
    assert (push.seen[0].headers["ttl"], push.seen[0].headers["urgency"]) == ("600", "high")


def test_an_injected_client_is_used(push: FakePushService, browser: Browser) -> None:
    with httpx.Client(headers={"X-Test": "injected"}) as client:
        provider = WebPushProvider(client=client, allow_http=True, **options())
        assert provider.send(message(browser.address())).status == "accepted"
    assert push.seen[0].headers["x-test"] == "injected"


@pytest.mark.parametrize("form", ["raw", "pem", "der"])
def test_the_vapid_key_may_be_raw_pem_or_der(
    form: str, push: FakePushService, build: Callable[..., WebPushProvider], browser: Browser
) -> None:
    if form == "raw":
        text = VAPID_RAW
    else:
        encoding = serialization.Encoding.PEM if form == "pem" else serialization.Encoding.DER
        data = VAPID.private_bytes(
            encoding, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        text = data.decode() if form == "pem" else b64(data)
    result = build(**options(vapid_private_key=text)).send(message(browser.address()))
    assert result.status == "accepted" and push.seen[0].claims is not None


# -- the push contact's address ------------------------------------------------------------
@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("not json", "the push address is not a subscription's JSON"),
        ('"a string"', "the push address has no 'endpoint' and 'keys'"),
        ("ENDPOINT_ONLY", "the push address has no 'endpoint' and 'keys'"),
        ("FTP", "the subscription's endpoint is not an https URL"),
        ("SHORT_KEY", "the subscription's 'p256dh' is not a P-256 public key"),
        ("OFF_CURVE", "the subscription's 'p256dh' is not a P-256 public key"),
        ("BAD_AUTH", "the subscription's 'auth' is not a 16-byte secret"),
    ],
)
def test_an_address_that_is_no_subscription_is_an_invalid_contact_and_nothing_is_sent(
    push: FakePushService, provider: WebPushProvider, browser: Browser, address: str, reason: str
) -> None:
    keys = json.loads(browser.address())["keys"]
    address = {
        "ENDPOINT_ONLY": json.dumps({"endpoint": browser.endpoint}),
        "FTP": browser.address(endpoint=browser.endpoint.replace("http://", "ftp://")),
        "SHORT_KEY": browser.address(keys={**keys, "p256dh": keys["p256dh"][:40]}),
        "OFF_CURVE": browser.address(keys={**keys, "p256dh": b64(b"\x04" + b"\x01" * 64)}),
        "BAD_AUTH": browser.address(keys={**keys, "auth": b64(b"short")}),
    }.get(address, address)

    result = provider.send(message(address))

    assert (result.status, result.invalid_contact, result.reason) == ("permanent", True, reason)
    assert push.seen == []
    assert_clean(result.reason, browser)


def test_only_https_endpoints_are_sent_to_unless_code_allows_http(
    push: FakePushService, browser: Browser
) -> None:
    provider = WebPushProvider(**options())
    result = provider.send(message(browser.address()))
    provider.close()
    assert (result.status, result.invalid_contact) == ("permanent", True)
    assert push.seen == []
    secure = subscription(browser.address(endpoint="https://push.example/abc"))
    assert secure.endpoint == "https://push.example/abc" and repr(secure) == "Subscription(***)"


def test_a_payload_too_large_for_one_record_is_never_sent(
    push: FakePushService, provider: WebPushProvider, browser: Browser
) -> None:
    result = provider.send(message(browser.address(), {"title": "T", "body": "x" * MAX_PAYLOAD}))
    assert result.status == "permanent" and not result.invalid_contact
    assert re.fullmatch(
        rf"the payload is too large \(\d+ > {MAX_PAYLOAD} bytes\)", str(result.reason)
    )
    assert push.seen == []


def test_the_largest_payload_that_fits_goes_and_decrypts(
    push: FakePushService, provider: WebPushProvider, browser: Browser
) -> None:
    # Given a body that makes the JSON exactly MAX_PAYLOAD bytes
    probe = provider.payload(message(browser.address(), {"title": "T", "body": ""}))
    room = MAX_PAYLOAD - len(json.dumps(probe, separators=(",", ":")).encode())
    result = provider.send(message(browser.address(), {"title": "T", "body": "x" * room}))
    assert result.status == "accepted"
    assert len(push.seen[0].body) == 4096  # header 86, then plaintext, delimiter and tag
    assert push.seen[0].payload["body"] == "x" * room


# -- what each answer means -----------------------------------------------------------------
#: (HTTP status, result, invalid contact, reason) — the table of docs/providers-webpush.md,
#: written out here independently of the module's.
ROWS = [
    (404, "permanent", True, "HTTP 404: the subscription is gone"),
    (410, "permanent", True, "HTTP 410: the subscription expired or was unsubscribed"),
    (413, "permanent", False, "HTTP 413: the payload is too large"),
    (429, "retryable", False, "HTTP 429: too many requests"),
    (400, "permanent", False, "HTTP 400: the push service refused the request"),
    (401, "permanent", False,
     "HTTP 401: the push service refused the VAPID signature: check vapid_private_key"),
    (403, "permanent", False,
     "HTTP 403: the push service refused the VAPID key: check vapid_private_key"),
    (500, "retryable", False, "HTTP 500: the push service is unavailable"),
    (502, "retryable", False, "HTTP 502: the push service is unavailable"),
    (503, "retryable", False, "HTTP 503: the push service is unavailable"),
    (504, "retryable", False, "HTTP 504: the push service is unavailable"),
    (405, "permanent", False, "HTTP 405"),
    (418, "permanent", False, "HTTP 418"),
]  # fmt: skip


def test_every_row_of_the_module_s_table_is_a_row_here() -> None:
    assert set(HTTP_STATUSES) <= {status for status, *_ in ROWS}


@pytest.mark.parametrize(("status", "kind", "invalid", "reason"), ROWS)
def test_an_answer_maps_as_the_table_says(
    push: FakePushService,
    provider: WebPushProvider,
    browser: Browser,
    status: int,
    kind: str,
    invalid: bool,
    reason: str,
) -> None:
    push.script.append(Reply(status))

    result = provider.send(message(browser.address()))

    assert (result.status, result.invalid_contact, result.reason) == (kind, invalid, reason)
    assert result.provider == "webpush" and result.provider_message_id is None
    assert len(push.seen) == 1 and push.seen[0].payload is not None
    assert_clean(result.reason, browser)


def test_a_subscription_the_service_no_longer_knows_is_gone(
    push: FakePushService, provider: WebPushProvider, browser: Browser
) -> None:
    del push.browsers[browser.endpoint.removeprefix(push.url)]
    result = provider.send(message(browser.address()))
    assert (result.status, result.invalid_contact) == ("permanent", True)


@pytest.mark.parametrize("status", [200, 202])
def test_any_2xx_is_accepted_with_or_without_a_location(
    push: FakePushService, provider: WebPushProvider, browser: Browser, status: int
) -> None:
    push.script.append(Reply(status))
    assert provider.send(message(browser.address())) == SendResult.accepted("webpush", None)


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, "7", 7.0),
        (503, "30", 30.0),
        (500, "1.5", 1.5),
        (429, None, None),
        (503, "later", None),
    ],
)
def test_retry_after_is_honoured(
    push: FakePushService,
    provider: WebPushProvider,
    browser: Browser,
    status: int,
    header: str | None,
    expected: float | None,
) -> None:
    push.script.append(Reply(status, {"Retry-After": header} if header else {}))
    result = provider.send(message(browser.address()))
    assert (result.status, result.retry_after) == ("retryable", expected)


def test_a_connection_closed_after_the_body_was_read_is_unknown(
    push: FakePushService, provider: WebPushProvider, browser: Browser
) -> None:
    push.script.append(CLOSE)
    result = provider.send(message(browser.address()))
    assert (result.status, result.reason) == (
        "unknown",
        "RemoteProtocolError after the request left",
    )
    assert len(push.seen) == 1


def test_a_push_service_that_never_answers_is_unknown(
    push: FakePushService, build: Callable[..., WebPushProvider], browser: Browser
) -> None:
    push.script.append(HANG)
    result = build(**options(timeout=0.3)).send(message(browser.address()))
    assert (result.status, result.reason) == ("unknown", "ReadTimeout after the request left")


def test_nothing_listening_is_retryable(browser: Browser, provider: WebPushProvider) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}/push/x"
        result = provider.send(message(browser.address(endpoint=endpoint)))
    assert (result.status, result.reason) == ("retryable", "ConnectError: nothing was sent")


def test_unknown_is_final_a_push_service_has_no_lookup(
    provider: WebPushProvider, browser: Browser
) -> None:
    assert not provider.can_look_up()
    assert provider.lookup(Sent("d-42", None, "push", browser.address(), datetime.now(UTC))) is None


# -- settings and privacy -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"vapid_private_key": None}, ["provider 'webpush' needs setting 'vapid_private_key'"]),
        ({"vapid_subject": None}, ["provider 'webpush' needs setting 'vapid_subject'"]),
        (
            {"vapid_private_key": "bm90IGEga2V5"},
            ["setting 'vapid_private_key' of provider 'webpush' is not a P-256 private key "
             "(base64url raw, DER or PEM)"],
        ),
        (
            {"vapid_subject": "push@shop.example"},
            ["setting 'vapid_subject' of provider 'webpush' must be a mailto: or https: URL, "
             "e.g. mailto:push@shop.example"],
        ),
        ({"vapid_subject": "https://shop.example"}, []),
        (
            {"urgency": "urgent"},
            ["setting 'urgency' of provider 'webpush' should be 'very-low', 'low', 'normal' "
             "or 'high'"],
        ),
        ({"ttl": -1}, ["setting 'ttl' of provider 'webpush' should be greater than or equal to 0"]),
    ],
)  # fmt: skip
def test_settings_problems_name_the_setting_never_the_key(
    changes: dict[str, Any], expected: list[str]
) -> None:
    settings = {**options(), **changes}
    found = WebPushProvider.validate({k: v for k, v in settings.items() if v is not None})
    assert found == expected
    assert not any(VAPID_RAW in line for line in found)


def test_an_rsa_or_other_curve_key_is_no_vapid_key() -> None:
    other = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert WebPushProvider.validate(options(vapid_private_key=other.decode())) == [
        "setting 'vapid_private_key' of provider 'webpush' is not a P-256 private key "
        "(base64url raw, DER or PEM)"
    ]


def test_the_vapid_key_is_secret_and_never_shown(build: Callable[..., WebPushProvider]) -> None:
    with pytest.raises(ProviderSettingsError) as refused:
        WebPushProvider(vapid_private_key=VAPID_RAW)
    assert VAPID_RAW not in str(refused.value)
    provider = build(**options())
    assert WebPushProvider.secret() == {"vapid_private_key"}
    assert "'vapid_private_key': '***'" in repr(provider) and VAPID_RAW not in repr(provider)


# -- the documented configuration -----------------------------------------------------------
def test_the_documented_snippet_is_a_working_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the providers: snippet of docs/providers-webpush.md, its variable set
    doc = (ROOT / "docs" / "providers-webpush.md").read_text(encoding="utf-8")
    [snippet] = re.findall(r"^```yaml\n(.*?)^```", doc, re.MULTILINE | re.DOTALL)
    monkeypatch.setenv("VAPID_PRIVATE_KEY", VAPID_RAW)
    assert "  push: {type: console}\n" in MAIN
    main = write_config(
        tmp_path,
        {"scenarios.yaml": ("  push: {type: console}\n", snippet.removeprefix("providers:\n"))},
    )

    # When it is validated (webpush known to the loader as the registry will know it)
    config = load_config(main, provider_types={**validators(), "webpush": WebPushProvider.validate})

    # Then push goes through Web Push, signed with the key from the environment
    spec = config.settings.providers["push"]
    assert spec.type == "webpush"
    provider = WebPushProvider(**spec.options())
    assert public_key(provider.vapid) == b64(point(VAPID))
    provider.close()
