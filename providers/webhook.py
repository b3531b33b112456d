"""POSTs each message as JSON to a URL — for shops that send through their own service,
and for end-to-end tests against a local server.

Status mapping: 2xx accepted (``id`` from the JSON answer as provider message id); 429
and 5xx retryable (``Retry-After`` honoured); other 4xx permanent (410 marks the contact
invalid); a connection refused before sending is retryable; a timeout after the request
left is ``unknown`` — never resent blindly.
"""

from __future__ import annotations

from typing import Any

import httpx

from cartflow.engine.channels import CHANNELS
from cartflow.engine.sending import Message, SendResult
from cartflow.providers.base import Provider
from cartflow.providers.options import ProviderOptions, Seconds, Secret, Url


class WebhookOptions(ProviderOptions):
    #: Where to POST each message (required).
    url: Url
    #: Sent as ``Authorization: Bearer <token>``; secret; default none.
    token: Secret | None = None
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

    def send(self, message: Message) -> SendResult:
        body = {
            "id": message.delivery_id,
            "idempotency_key": message.idempotency_key,
            "channel": message.channel,
            "to": message.address,
            "locale": message.locale,
            "parts": message.parts,
            "metadata": message.metadata,
        }
        try:
            response = self.client.post(self.url, json=body)
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
