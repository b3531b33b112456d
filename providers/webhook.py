"""POSTs each message as JSON to a URL — for shops that send through their own service,
and for end-to-end tests against a local server.

With ``secret`` (``whsec_…``) the body is signed the Standard Webhooks way
(``webhook-id`` = the delivery id, the same on every retry of it, ``webhook-timestamp``,
``webhook-signature: v1,<base64 HMAC-SHA256>``), so the receiver can check it came from
cartflow and deduplicate retries; ``token`` adds ``Authorization: Bearer``.

Status mapping: 2xx accepted (``id`` from the JSON answer as provider message id); 429
and 5xx retryable (``Retry-After`` honoured); other 4xx permanent (410 marks the contact
invalid); a connection refused before sending is retryable; a timeout after the request
left is ``unknown`` — never resent blindly.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr, field_validator
from standardwebhooks.webhooks import Webhook

from cartflow.engine.channels import CHANNELS
from cartflow.engine.sending import Message, SendResult
from cartflow.providers.base import Provider
from cartflow.providers.options import ProviderOptions, Seconds, Secret, Url


class WebhookOptions(ProviderOptions):
    #: Where to POST each message (required).
    url: Url
    #: Sent as ``Authorization: Bearer <token>``; secret; default none.
    token: Secret | None = None
    #: A Standard Webhooks secret (``whsec_<base64>``): the body is signed with it; secret.
    secret: Secret | None = None

    @field_validator("secret")
    @classmethod
    def _standard_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        text = value.get_secret_value()
        try:
            key = base64.b64decode(text.removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not text.startswith("whsec_") or len(key) < 16:
            raise ValueError("secret must be whsec_ and at least 16 bytes in base64")
        return value

    #: Seconds to wait for the answer; default 10.
    timeout: Seconds = 10.0


class WebhookProvider(Provider):
    name = "webhook"
    channels = CHANNELS
    options_model = WebhookOptions
    options: WebhookOptions

    def __init__(self, client: httpx.Client | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.url = self.options.url
        token = self.options.token
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        self.client = client or httpx.Client(timeout=self.options.timeout, headers=headers)
        secret = self.options.secret
        self.signer = Webhook(secret.get_secret_value()) if secret is not None else None

    def send(self, message: Message) -> SendResult:
        body = as_json(message)
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
        headers = {"Content-Type": "application/json"}
        if self.signer is not None:
            now = datetime.now(UTC)
            headers["webhook-id"] = message.delivery_id
            headers["webhook-timestamp"] = str(int(now.timestamp()))
            headers["webhook-signature"] = self.signer.sign(message.delivery_id, now, data)
        try:
            response = self.client.post(self.url, content=data.encode(), headers=headers)
        except httpx.ConnectError as exc:
            return SendResult.retryable(self.name, f"connection failed: {type(exc).__name__}")
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                return SendResult.retryable(self.name, "connect timeout")
            return SendResult.unknown(self.name, f"{type(exc).__name__} after the request left")
        except httpx.HTTPError as exc:
            return SendResult.unknown(self.name, f"{type(exc).__name__}")
        status = response.status_code
        if 200 <= status < 300:
            try:
                message_id = str(response.json().get("id") or "")
            except ValueError:
                message_id = ""
            return SendResult.accepted(self.name, message_id or None)
        if status == 429 or status >= 500:
            retry_after = response.headers.get("retry-after")
            seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
            return SendResult.retryable(self.name, f"HTTP {status}", retry_after=seconds)
        return SendResult.permanent(self.name, f"HTTP {status}", invalid_contact=status == 410)

    def close(self) -> None:
        self.client.close()


def as_json(message: Message) -> dict[str, Any]:
    """The message as the webhook posts it (and the file provider writes it)."""
    return {
        "id": message.delivery_id,
        "idempotency_key": message.idempotency_key,
        "channel": message.channel,
        "to": message.address,
        "locale": message.locale,
        "parts": message.parts,
        "metadata": message.metadata,
    }
