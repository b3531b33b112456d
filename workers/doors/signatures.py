"""How a door knows a webhook comes from the platform: its signature over the raw body.

* :func:`hmac_base64_matches` — Shopify's ``X-Shopify-Hmac-SHA256`` and WooCommerce's
  ``X-WC-Webhook-Signature``: base64 of HMAC-SHA256(secret, raw body). Any secret of the
  list may match (a secret being rotated), compared in constant time.
* :func:`verify_standard_webhook` — the Standard Webhooks scheme (``webhook-id``,
  ``webhook-timestamp``, ``webhook-signature: v1,<base64> …``) of the generic doors. The
  ``standardwebhooks`` package signs (its ``Webhook.sign``: secret decoding and the signed
  content ``{id}.{timestamp}.{body}``); the timestamp is checked here against the
  engine's clock, not the system's (``Webhook.verify`` reads ``datetime.now`` and lets a
  malformed signature header escape as a bare ``ValueError``).

Each refusal is a :class:`SignatureRefused` whose message says why without echoing a
secret or the signature sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from standardwebhooks.webhooks import Webhook

#: How far a Standard Webhooks ``webhook-timestamp`` may be from our clock (the spec's 5 min).
TOLERANCE = timedelta(minutes=5)
#: The longest ``webhook-id`` taken (it becomes part of an event id of ≤ 200 characters).
MAX_MESSAGE_ID = 150


class SignatureRefused(Exception):
    """The webhook is not proven to come from the platform: answer 401, store nothing."""


def hmac_base64_matches(body: bytes, sent: str | None, secrets: Sequence[str]) -> None:
    """Raise :class:`SignatureRefused` unless ``sent`` is base64(HMAC-SHA256(secret, body))
    for one of ``secrets``."""
    if not sent:
        raise SignatureRefused("the signature header is missing")
    try:
        given = base64.b64decode(sent.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRefused("the signature is not base64") from None
    matched = False
    for secret in secrets:  # every secret is tried: the time taken says nothing
        expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise SignatureRefused("the signature does not match the body with any configured secret")


@dataclass(frozen=True)
class StandardMessage:
    """A verified Standard Webhooks message: its id (the dedup key) and when it was sent."""

    id: str
    sent_at: datetime


def verify_standard_webhook(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str],
    now: datetime,
    tolerance: timedelta = TOLERANCE,
) -> StandardMessage:
    """Check ``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature`` (lower-case
    ``headers``) against ``secrets`` (``whsec_…``) at ``now`` (the engine's clock)."""
    message_id = headers.get("webhook-id", "").strip()
    stamp = headers.get("webhook-timestamp", "").strip()
    signatures = headers.get("webhook-signature", "").split()
    if not (message_id and stamp and signatures):
        raise SignatureRefused(
            "send the webhook-id, webhook-timestamp and webhook-signature headers"
        )
    if len(message_id) > MAX_MESSAGE_ID or not message_id.isprintable():
        raise SignatureRefused(f"webhook-id must be printable, at most {MAX_MESSAGE_ID} characters")
    if not stamp.isdigit() or len(stamp) > 12:
        raise SignatureRefused("webhook-timestamp must be whole seconds since 1970")
    sent_at = datetime.fromtimestamp(int(stamp), tz=UTC)
    if abs(sent_at - now) > tolerance:
        raise SignatureRefused(
            f"webhook-timestamp is more than {tolerance.total_seconds() / 60:g} minutes "
            "from our clock; a replay, or a clock to set right"
        )
    try:
        content = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureRefused("the body is not UTF-8 text") from None
    given = []
    for entry in signatures:
        version, _, signature = entry.partition(",")
        if version != "v1":
            continue  # other schemes (v1a: asymmetric) are not ours to check
        try:
            given.append(base64.b64decode(signature, validate=True))
        except (binascii.Error, ValueError):
            continue
    matched = False
    for secret in secrets:
        expected = Webhook(secret).sign(message_id, sent_at, content).partition(",")[2]
        digest = base64.b64decode(expected)
        for candidate in given:
            matched |= hmac.compare_digest(digest, candidate)
    if not matched:
        raise SignatureRefused("no v1 signature matches the body with the configured secret")
    return StandardMessage(id=message_id, sent_at=sent_at)
