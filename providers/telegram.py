"""Sends messenger messages through the Telegram Bot API, with plain httpx (no SDK).

A send is ``POST {base_url}/bot<bot_token>/sendMessage`` with JSON ``{"chat_id", "text",
"link_preview_options"}`` (plain text: no ``parse_mode``, so nothing a template renders is
taken for markup). Telegram answers ``{"ok": true, "result": {"message_id", …}}``; the
provider message id is ``<chat_id>:<message_id>``. A refusal is ``{"ok": false,
"error_code", "description", "parameters"}`` and its meaning is in the ``description`` as
much as in the code, so :data:`DESCRIPTIONS` is read first (a phrase of the description,
lower-cased), then :data:`HTTP_STATUSES`:

* 403 "bot was blocked by the user" (or "… kicked …") → the shopper withdrew consent on
  the messenger channel; "user is deactivated", "bot can't initiate conversation",
  400 "chat not found" → the chat id is invalid, never used again;
* 429 → retryable after ``parameters.retry_after`` (or ``Retry-After``);
* 401, 404 → permanent (the bot token is wrong); other 4xx → permanent;
* 503 → retryable; any other 5xx → **unknown**: ``sendMessage`` has no idempotency key
  and no lookup, so the send is final, never repeated blindly (the shopper might get it
  twice).

A reason holds Telegram's code and the documented phrase only — never the chat id, the
text or the token.

**What comes back** is Telegram's updates webhook (``setWebhook`` with ``secret_token``:
Telegram sends it back in ``X-Telegram-Bot-Api-Secret-Token``, checked in constant time;
without ``webhook_secret`` set every update is refused): :meth:`TelegramProvider.parse_inbound`
reads a private chat's ``message`` (its text: ``/start <token>`` links the chat to a
shopper, ``/stop`` withdraws consent, ``/start`` alone gives it back, anything else is a
reply) and ``my_chat_member`` (the shopper blocked the bot → consent withdrawn). Telegram
sends no delivery receipts.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from cartflow.engine.inbound import Inbound
from cartflow.engine.receipts import InboundRequest, ReceiptRejected
from cartflow.engine.sending import Message, SendResult
from cartflow.providers.base import Provider
from cartflow.providers.http_answers import retry_after as _retry_after
from cartflow.providers.http_answers import transport_failure
from cartflow.providers.options import Flag, ProviderOptions, Seconds, Secret, Text, Url

Kind = Literal["retryable", "unknown", "permanent", "invalid_contact", "consent"]

#: A phrase of Telegram's ``description`` (lower-cased) → (kind, what it means); read
#: before the HTTP status (Telegram's 403 means several things).
DESCRIPTIONS: tuple[tuple[str, Kind, str], ...] = (
    ("bot was blocked by the user", "consent", "the shopper blocked the bot"),
    ("bot was kicked", "consent", "the bot was removed from the chat"),
    ("user is deactivated", "invalid_contact", "the Telegram account was deleted"),
    ("bot can't initiate conversation", "invalid_contact", "the shopper never started the bot"),
    ("chat not found", "invalid_contact", "no such chat"),
    ("peer_id_invalid", "invalid_contact", "no such chat"),
    ("message is too long", "permanent", "the text is over 4096 characters"),
    ("message text is empty", "permanent", "no text"),
)
#: HTTP status → kind when no description matched (other 5xx: unknown; other 4xx:
#: permanent).
HTTP_STATUSES: Mapping[int, tuple[Kind, str]] = {
    401: ("permanent", "the bot token is wrong"),
    404: ("permanent", "the bot token is wrong"),
    429: ("retryable", "too many requests"),
    503: ("retryable", "Telegram unavailable"),
}
#: The header Telegram repeats the webhook's ``secret_token`` in.
SECRET_HEADER = "x-telegram-bot-api-secret-token"
#: ``my_chat_member`` statuses meaning the shopper stopped the bot.
LEFT = frozenset({"kicked", "left"})


class TelegramOptions(ProviderOptions):
    #: The bot's token from @BotFather, ``123456:ABC…`` (required; secret).
    bot_token: Secret
    #: The bot's username (without ``@``): the ``t.me/<bot_username>?start=…`` links that
    #: connect a shopper's chat are made with it.
    bot_username: Text | None = None
    #: The ``secret_token`` given to ``setWebhook`` (secret; 1–256 of ``A-Z a-z 0-9 _ -``):
    #: updates whose ``X-Telegram-Bot-Api-Secret-Token`` differs are refused.
    webhook_secret: Secret | None = None
    #: Show the preview of the first link in a message (default false: a short reminder).
    link_preview: Flag = False
    #: Where the Bot API is (a loopback fake in tests).
    base_url: Url = "https://api.telegram.org"
    #: Seconds to wait for an answer; default 10.
    timeout: Seconds = 10.0


class TelegramProvider(Provider):
    name = "telegram"
    channels = ("messenger",)
    options_model = TelegramOptions
    options: TelegramOptions

    def __init__(self, client: httpx.Client | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.api = self.options.base_url.rstrip("/")
        self.client = client or httpx.Client(timeout=self.options.timeout)

    def send(self, message: Message) -> SendResult:
        chat_id = message.address
        body = {
            "chat_id": chat_id,
            "text": message.parts.get("text", ""),
            "link_preview_options": {"is_disabled": not self.options.link_preview},
        }
        token = self.options.bot_token.get_secret_value()
        try:
            response = self.client.post(f"{self.api}/bot{token}/sendMessage", json=body)
        except httpx.HTTPError as exc:
            return transport_failure(self.name, exc)
        answer = _json(response)
        if response.status_code == 200 and answer.get("ok") is True:
            result = answer.get("result")
            message_id = result.get("message_id") if isinstance(result, dict) else None
            if isinstance(message_id, int) and not isinstance(message_id, bool):
                return SendResult.accepted(self.name, f"{chat_id}:{message_id}")
            return SendResult.unknown(self.name, "HTTP 200 without a message_id")
        return self._refused(response, answer)

    def _refused(self, response: httpx.Response, answer: dict[str, Any]) -> SendResult:
        status = response.status_code
        code = answer.get("error_code")
        code = code if isinstance(code, int) and not isinstance(code, bool) else status
        description = answer.get("description")
        text = description.lower() if isinstance(description, str) else ""
        found = next(((k, m) for phrase, k, m in DESCRIPTIONS if phrase in text), None)
        kind, meaning = found or HTTP_STATUSES.get(
            status,
            ("unknown", "server error: the message may exist")
            if status >= 500
            else ("permanent", ""),
        )
        reason = f"Telegram {code}{f': {meaning}' if meaning else ''}"
        if kind == "retryable":
            return SendResult.retryable(self.name, reason, _wait(response, answer))
        if kind == "unknown":
            return SendResult.unknown(self.name, reason)
        return SendResult.permanent(
            self.name,
            reason,
            invalid_contact=kind == "invalid_contact",
            consent_withdrawn=kind == "consent",
        )

    def parse_inbound(self, request: InboundRequest) -> list[Inbound]:
        """What one update says, after its secret header is checked (:class:`ReceiptRejected`
        when it differs or ``webhook_secret`` is not set). Updates that are not about a
        private chat's text or the bot's membership give nothing."""
        secret = self.options.webhook_secret
        if secret is None:
            raise ReceiptRejected("telegram: webhook_secret is not set: cannot check updates")
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
            raise ReceiptRejected("telegram: the update's secret token is missing or wrong")
        update = _loads(request.body)
        update_id = update.get("update_id")
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            raise ValueError("telegram: an update without update_id")
        message = update.get("message")
        member = update.get("my_chat_member")
        if isinstance(message, dict) and isinstance(message.get("text"), str):
            chat = _private_chat(message)
            if chat is None:
                return []
            return [
                Inbound(
                    self.name,
                    "messenger",
                    chat,
                    message["text"],
                    str(update_id),
                    _when(message.get("date")),
                )
            ]
        if isinstance(member, dict):
            chat = _private_chat(member)
            new = member.get("new_chat_member")
            status = new.get("status") if isinstance(new, dict) else None
            if chat is None or status not in LEFT:
                return []
            when = _when(member.get("date"))
            return [Inbound(self.name, "messenger", chat, "", str(update_id), when, "blocked")]
        return []

    def link(self, token: str) -> str | None:
        """The ``t.me`` deep link that connects a shopper's chat (``token`` from
        :meth:`cartflow.engine.links.Links.messenger`); None without ``bot_username``."""
        if not self.options.bot_username:
            return None
        return f"https://t.me/{self.options.bot_username.lstrip('@')}?start={token}"

    def close(self) -> None:
        self.client.close()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _loads(body: bytes) -> dict[str, Any]:
    try:
        update = json.loads(body)
    except (ValueError, RecursionError):
        raise ValueError("telegram: the update is not JSON") from None
    if not isinstance(update, dict):
        raise ValueError("telegram: the update is not a JSON object")
    return update


def _wait(response: httpx.Response, answer: dict[str, Any]) -> float | None:
    parameters = answer.get("parameters")
    seconds = parameters.get("retry_after") if isinstance(parameters, dict) else None
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
        return float(seconds)
    return _retry_after(response)


def _private_chat(payload: dict[str, Any]) -> str | None:
    """The chat id of a one-to-one chat with the bot; None for groups and channels."""
    chat = payload.get("chat")
    if not isinstance(chat, dict) or chat.get("type") != "private":
        return None
    chat_id = chat.get("id")
    if not isinstance(chat_id, int) or isinstance(chat_id, bool):
        return None
    return str(chat_id)


def _when(value: Any) -> datetime | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
