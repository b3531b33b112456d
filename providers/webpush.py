"""Sends push notifications to browsers with the Web Push protocol: RFC 8030 delivery,
RFC 8291 message encryption (``aes128gcm``, with http-ece) and RFC 8292 VAPID (with
py-vapid) — over the injected httpx client (no pywebpush: it brings requests and aiohttp).

The push contact's address is the browser's subscription as ``PushSubscription.toJSON()``
gives it — ``{"endpoint": "https://…", "keys": {"p256dh": "…", "auth": "…"}}`` — the JSON
text the shop sends as ``contact.push_token`` (:func:`subscription` reads it). An address
that is not such a subscription, or whose endpoint is not https, is an invalid contact.

A send is ``POST <endpoint>`` with the encrypted body (:func:`encrypt`: a new P-256 key
and salt each time) and the headers ``Content-Encoding: aes128gcm``, ``TTL`` (``ttl``),
``Urgency`` (``urgency``), ``Topic`` (one per cart, :func:`topic`: a newer reminder about
the same cart replaces one the push service still holds) and ``Authorization: vapid
t=<JWT>,k=<public key>`` (ES256; ``aud`` the endpoint's origin, ``exp``
:data:`VAPID_LIFETIME` ahead, ``sub`` ``vapid_subject``). What is encrypted is the JSON
:meth:`WebPushProvider.payload` — ``title``, ``body``, ``url``, ``cartflow_delivery_id``,
``cart_id`` — for the shop's service worker to show.

What an answer means is table-driven: 2xx accepted (the ``Location`` header, the push
service's URL of the message, is the provider message id), then :data:`HTTP_STATUSES`,
then any other 5xx retryable (a duplicate push is cheap and push services say to retry),
any other answer permanent. ``Retry-After`` is honoured. A connection refused, a connect
or pool timeout is retryable; a read timeout or a connection lost once the request left
is **unknown** — and final: a push service has no API to look a message up.

Reasons never hold the endpoint, the subscription's keys or the VAPID key: the endpoint
identifies the browser.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import http_ece
import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid02, VapidException
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from cartflow.engine.sending import Message, SendResult
from cartflow.providers.base import Provider
from cartflow.providers.http_answers import retry_after as _retry_after
from cartflow.providers.http_answers import transport_failure
from cartflow.providers.options import ProviderOptions, Seconds, Secret, Text

#: What cartflow does with an answer (for a permanent one: whether the subscription is
#: gone).
Kind = Literal["retryable", "permanent", "invalid_contact"]

#: HTTP status of a push service's refusal → (kind, what it means). Other 5xx: retryable.
HTTP_STATUSES: Mapping[int, tuple[Kind, str]] = {
    404: ("invalid_contact", "the subscription is gone"),
    410: ("invalid_contact", "the subscription expired or was unsubscribed"),
    413: ("permanent", "the payload is too large"),
    429: ("retryable", "too many requests"),
    400: ("permanent", "the push service refused the request"),
    401: ("permanent", "the push service refused the VAPID signature: check vapid_private_key"),
    403: ("permanent", "the push service refused the VAPID key: check vapid_private_key"),
}
#: How long the VAPID JWT is valid (RFC 8292 allows at most 24 hours).
VAPID_LIFETIME = 12 * 3600
#: Record size of the encrypted body: one record of at most 4096 octets (RFC 8291 §4).
RECORD_SIZE = 4096
#: The most plaintext one record carries: 4096 less the header (86), the tag (16) and
#: the delimiter (1).
MAX_PAYLOAD = RECORD_SIZE - 86 - 16 - 1
#: The ``Topic`` header's alphabet and length (RFC 8030 §5.4).
TOPIC = re.compile(r"[A-Za-z0-9_\-]{1,32}")


@dataclass(frozen=True)
class Subscription:
    """A browser's push subscription (repr never shows it: it identifies the browser)."""

    endpoint: str
    #: The browser's P-256 public key, uncompressed (65 bytes).
    p256dh: bytes
    #: The browser's authentication secret (16 bytes).
    auth: bytes

    def __repr__(self) -> str:
        return "Subscription(***)"


def subscription(address: str, allow_http: bool = False) -> Subscription:
    """The subscription in a push contact's address (``PushSubscription.toJSON()`` text).
    Raises :class:`ValueError` saying what is wrong, never quoting the address."""
    try:
        found = json.loads(address)
    except ValueError:
        raise ValueError("the push address is not a subscription's JSON") from None
    keys = found.get("keys") if isinstance(found, dict) else None
    endpoint = found.get("endpoint") if isinstance(found, dict) else None
    if not isinstance(endpoint, str) or not isinstance(keys, dict):
        raise ValueError("the push address has no 'endpoint' and 'keys'")
    parts = urlsplit(endpoint)
    if parts.scheme not in (("https", "http") if allow_http else ("https",)) or not parts.hostname:
        raise ValueError("the subscription's endpoint is not an https URL")
    p256dh, auth = _unb64(keys.get("p256dh")), _unb64(keys.get("auth"))
    if p256dh is None or len(p256dh) != 65 or p256dh[0] != 4:
        raise ValueError("the subscription's 'p256dh' is not a P-256 public key")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise ValueError("the subscription's 'p256dh' is not a P-256 public key") from None
    if auth is None or len(auth) != 16:
        raise ValueError("the subscription's 'auth' is not a 16-byte secret")
    return Subscription(endpoint, p256dh, auth)


def encrypt(
    plaintext: bytes,
    target: Subscription,
    salt: bytes | None = None,
    sender: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """``plaintext`` encrypted for ``target`` as RFC 8291 says (``aes128gcm``, one record):
    a new sender key and salt unless given (tests give the RFC's example values)."""
    return bytes(
        http_ece.encrypt(
            plaintext,
            salt=salt or os.urandom(16),
            private_key=sender or ec.generate_private_key(ec.SECP256R1()),
            dh=target.p256dh,
            auth_secret=target.auth,
            rs=RECORD_SIZE,
            version="aes128gcm",
        )
    )


def topic(cart_id: str) -> str:
    """The ``Topic`` for a cart: 32 URL-safe base64 characters of a digest of its id (the
    push service never sees the id itself)."""
    digest = hashlib.sha256(f"cartflow-cart:{cart_id}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:32]


def vapid_key(text: str) -> Vapid02:
    """The VAPID signer for a private key given as base64url raw (32 bytes, what
    ``web-push generate-vapid-keys`` prints), base64 DER or PEM."""
    try:
        if "-----BEGIN" in text:
            signer = Vapid02.from_pem(text.strip().encode())
        else:
            signer = Vapid02.from_string(text.strip())
        key = signer.private_key
    except (ValueError, TypeError, binascii.Error, VapidException):
        key = None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("is not a P-256 private key (base64url raw, DER or PEM)")
    return signer


class WebPushOptions(ProviderOptions):
    #: The VAPID private key (required; secret): base64url raw, base64 DER or PEM.
    vapid_private_key: Secret
    #: Who runs the sender, for the push service's operators: ``mailto:`` or ``https:``
    #: (required).
    vapid_subject: Text
    #: Seconds a push service keeps an undelivered notification; default a day.
    ttl: int = Field(default=86400, ge=0, le=2_419_200)
    #: ``very-low``, ``low``, ``normal`` (the default) or ``high``.
    urgency: Literal["very-low", "low", "normal", "high"] = "normal"
    #: Seconds to wait for an answer; default 10.
    timeout: Seconds = 10.0

    @field_validator("vapid_private_key")
    @classmethod
    def _key(cls, value: Any) -> Any:
        try:
            vapid_key(value.get_secret_value())
        except ValueError as exc:
            raise PydanticCustomError("cartflow_vapid_key", str(exc)) from None
        return value

    @field_validator("vapid_subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        if re.fullmatch(r"mailto:[^@\s]+@[^@\s]+|https://[^\s/]+(/\S*)?", value.strip()):
            return value.strip()
        raise PydanticCustomError(
            "cartflow_vapid_subject",
            "must be a mailto: or https: URL, e.g. mailto:push@shop.example",
        )


class WebPushProvider(Provider):
    name = "webpush"
    channels = ("push",)
    options_model = WebPushOptions
    options: WebPushOptions

    def __init__(
        self,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        allow_http: bool = False,
        **options: Any,
    ) -> None:
        """``clock`` dates the VAPID JWT; ``allow_http`` (code only: tests) lets an
        endpoint be plain http."""
        super().__init__(**options)
        self.vapid = vapid_key(self.options.vapid_private_key.get_secret_value())
        self.client = client or httpx.Client(timeout=self.options.timeout)
        self.clock = clock
        self.allow_http = allow_http

    def send(self, message: Message) -> SendResult:
        try:
            target = subscription(message.address, self.allow_http)
        except ValueError as exc:
            return SendResult.permanent(self.name, str(exc), invalid_contact=True)
        plaintext = json.dumps(self.payload(message), separators=(",", ":")).encode()
        if len(plaintext) > MAX_PAYLOAD:
            return SendResult.permanent(
                self.name, f"the payload is too large ({len(plaintext)} > {MAX_PAYLOAD} bytes)"
            )
        headers = {
            "TTL": str(self.options.ttl),
            "Urgency": self.options.urgency,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            **self.authorization(target.endpoint),
        }
        cart = message.metadata.get("cart_id")
        if cart:
            headers["Topic"] = topic(str(cart))
        try:
            response = self.client.post(
                target.endpoint, content=encrypt(plaintext, target), headers=headers
            )
        except httpx.HTTPError as exc:
            return self._failed(exc)
        if 200 <= response.status_code < 300:
            return SendResult.accepted(self.name, response.headers.get("location") or None)
        return self._refused(response)

    def payload(self, message: Message) -> dict[str, str]:
        """What the service worker receives (the ``push`` event's ``data.json()``)."""
        shown = {
            "title": message.parts.get("title", ""),
            "body": message.parts.get("body", ""),
            "cartflow_delivery_id": message.delivery_id,
        }
        if message.parts.get("url"):
            shown["url"] = message.parts["url"]
        if message.metadata.get("cart_id"):
            shown["cart_id"] = str(message.metadata["cart_id"])
        return shown

    def authorization(self, endpoint: str) -> dict[str, str]:
        """The ``Authorization: vapid t=…,k=…`` header for ``endpoint``'s push service."""
        parts = urlsplit(endpoint)
        claims = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int(self.clock()) + VAPID_LIFETIME,
            "sub": self.options.vapid_subject,
        }
        signed: dict[str, str] = self.vapid.sign(claims)
        return {"Authorization": signed["Authorization"]}

    def _failed(self, exc: httpx.HTTPError) -> SendResult:
        return transport_failure(self.name, exc)

    def _refused(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        if status in HTTP_STATUSES:
            kind, meaning = HTTP_STATUSES[status]
        elif status >= 500:
            kind, meaning = "retryable", "the push service is unavailable"
        else:
            kind, meaning = "permanent", ""
        reason = f"HTTP {status}: {meaning}" if meaning else f"HTTP {status}"
        if kind == "retryable":
            return SendResult.retryable(self.name, reason, _retry_after(response))
        return SendResult.permanent(self.name, reason, invalid_contact=kind == "invalid_contact")

    def close(self) -> None:
        self.client.close()


def public_key(signer: Vapid02) -> str:
    """The VAPID public key, base64url: the ``applicationServerKey`` the shop's page
    subscribes with."""
    raw = signer.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(value: Any) -> bytes | None:
    """base64url (padded or not; plain base64 too), or None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
