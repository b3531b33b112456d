"""Sends SMS through SMS.ru's HTTP API, with plain httpx (no SDK).

A send is ``POST {base_url}/sms/send``, form-encoded ``api_id``, ``to`` (the number without
``+``), ``msg`` (UTF-8: Cyrillic as written), ``json=1`` and, when ``sender`` is set,
``from`` — in the body, so neither the key nor the number is in a URL. SMS.ru answers
HTTP 200 with ``{"status": "OK"|"ERROR", "status_code", "sms": {"<number>": {"status",
"status_code", "sms_id"}}}``: a request-level ``status_code`` other than 100, or the
number's own, is a refusal inside the 200. SMS.ru takes no id of the client's: the
``sms_id`` it answers is kept as the provider message id.

What an answer means is table-driven, read in this order:

1. HTTP 5xx: 503 retryable (``Retry-After`` honoured), any other **unknown** — a create is
   not idempotent, the message may exist; HTTP 429 retryable; any other non-200: permanent;
2. a 200 that is not SMS.ru's JSON: **unknown** (the request left, its fate unread);
3. the request's ``status_code`` when not 100, else the number's: 100 accepted (with its
   ``sms_id``), others by :data:`ERROR_CODES` (not listed: permanent, the code in the
   reason).

A connection refused, a connect timeout or a pool timeout (the request never left) is
retryable; a read timeout or any failure after the request left is unknown. A reason holds
SMS.ru's code only — never its ``status_text``, the number or the key.

:meth:`SmsRuProvider.status` asks ``sms/status`` by ``sms_id``;
:meth:`SmsRuProvider.parse_receipt` reads SMS.ru's callbacks (form fields ``data[]``, each
``sms_status\\n<sms_id>\\n<code>\\n<unix time>``) after checking ``receipt_token`` against
the callback URL's ``token`` — SMS.ru does not sign callbacks, so without it every
callback is refused (:class:`~cartflow.engine.receipts.ReceiptRejected`). SMS.ru expects
the body ``100`` in answer (:meth:`SmsRuProvider.receipt_answer`).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

import httpx

from cartflow.engine.receipts import InboundRequest, Receipt, ReceiptRejected, ReceiptStatus
from cartflow.engine.sending import Message, SendResult
from cartflow.providers.base import Provider
from cartflow.providers.http_answers import retry_after as _retry_after
from cartflow.providers.http_answers import transport_failure
from cartflow.providers.options import ProviderOptions, Seconds, Secret, Text, Url

#: What cartflow does with an answer: the :class:`SendResult` kind, and for a permanent
#: one whether the contact is invalid or the shopper withdrew consent.
Kind = Literal["accepted", "retryable", "unknown", "permanent", "invalid_contact", "consent"]

#: SMS.ru's code for "done" (a request) or "queued" (a message).
OK = 100
#: SMS.ru ``status_code`` of a refused send → (kind, what it means).
ERROR_CODES: Mapping[int, tuple[Kind, str]] = {
    200: ("permanent", "invalid api_id"),
    201: ("permanent", "not enough funds on the account"),
    202: ("invalid_contact", "invalid recipient number"),
    203: ("permanent", "no message text"),
    204: ("permanent", "sender not approved for this operator"),
    205: ("permanent", "message too long"),
    206: ("retryable", "the account's daily limit is reached"),
    207: ("permanent", "no route to this number"),
    209: ("consent", "the number is on the account's stop list"),
    212: ("permanent", "the text is not UTF-8"),
    214: ("permanent", "foreign number: the account sends to Russian numbers only"),
    215: ("consent", "the number is on SMS.ru's stop list: the recipient reported spam"),
    216: ("permanent", "a forbidden word in the text"),
    220: ("retryable", "SMS.ru temporarily unavailable"),
    230: ("retryable", "the daily limit of messages to this number is reached"),
    231: ("permanent", "the same text reached this number within a minute"),
    232: ("permanent", "the same text reached this number today"),
    300: ("permanent", "authentication failed: invalid token"),
    301: ("permanent", "authentication failed: check api_id"),
    302: ("permanent", "the account is not confirmed"),
    500: ("unknown", "SMS.ru server error: the message may exist"),
}
#: HTTP status → kind, for the statuses with a rule of their own (other 5xx: unknown,
#: other statuses but 200: permanent).
HTTP_STATUSES: Mapping[int, Kind] = {429: "retryable", 503: "retryable"}
#: SMS.ru message status code (``sms/status``, callbacks) → (kind, what it means).
MESSAGE_CODES: Mapping[int, tuple[Kind, str]] = {
    100: ("accepted", "queued at SMS.ru"),
    101: ("accepted", "being passed to the operator"),
    102: ("accepted", "sent, in transit"),
    103: ("accepted", "delivered"),
    110: ("accepted", "read"),
    104: ("permanent", "not delivered: its time to live ran out"),
    105: ("permanent", "not delivered: deleted by the operator"),
    106: ("permanent", "not delivered: phone failure"),
    107: ("permanent", "not delivered: unknown reason"),
    108: ("permanent", "not delivered: rejected"),
    150: ("permanent", "not delivered: no route to this number"),
}
#: Message status code → receipt (codes before "sent" give none).
RECEIPT_STATUSES: Mapping[int, ReceiptStatus] = {
    102: ReceiptStatus.ACCEPTED,
    103: ReceiptStatus.DELIVERED,
    110: ReceiptStatus.OPENED,
    **dict.fromkeys((104, 105, 106, 107, 108, 150), ReceiptStatus.FAILED),
}
#: The query parameter that carries ``receipt_token`` on the callback URL.
TOKEN_PARAMETER = "token"
#: A form field of a callback: ``data[]`` or ``data[<n>]``.
_DATA = re.compile(r"data\[\d*\]")
#: An ``sms_id`` as SMS.ru writes it (``000000-10000000``); anything else is refused.
_SMS_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class SmsRuOptions(ProviderOptions):
    #: The account's API key, ``api_id`` (required; secret).
    api_id: Secret
    #: The approved sender name the SMS comes from (SMS.ru's ``from``); none: the
    #: account's default.
    sender: Text | None = None
    #: A shared secret that must arrive as ``?token=`` on every callback (secret): give
    #: SMS.ru the callback URL ``…/v1/providers/smsru/status?token=<receipt_token>``.
    receipt_token: Secret | None = None
    #: Where SMS.ru's API is (a loopback fake in tests).
    base_url: Url = "https://sms.ru"
    #: Seconds to wait for an answer; default 10.
    timeout: Seconds = 10.0


class SmsRuProvider(Provider):
    name = "smsru"
    channels = ("sms",)
    options_model = SmsRuOptions
    options: SmsRuOptions

    def __init__(self, client: httpx.Client | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.api = self.options.base_url.rstrip("/")
        self.client = client or httpx.Client(timeout=self.options.timeout)

    def send(self, message: Message) -> SendResult:
        number = message.address.lstrip("+")
        form = {
            "api_id": self.options.api_id.get_secret_value(),
            "to": number,
            "msg": message.parts.get("text", ""),
            "json": "1",
        }
        if self.options.sender is not None:
            form["from"] = self.options.sender
        try:
            response = self.client.post(f"{self.api}/sms/send", data=form)
        except httpx.HTTPError as exc:
            return self._failed(exc)
        status = response.status_code
        if status != 200:
            kind = HTTP_STATUSES.get(status, "unknown" if status >= 500 else "permanent")
            reason = f"HTTP {status}{': the message may exist' if kind == 'unknown' else ''}"
            return _result(self.name, kind, reason, _retry_after(response))
        body = _json(response)
        if body is None or _code(body.get("status_code")) is None:
            return SendResult.unknown(self.name, "HTTP 200 that is not SMS.ru's answer")
        code = _code(body.get("status_code"))
        if code == OK:
            sms = body.get("sms")
            entries = sms if isinstance(sms, dict) else {}
            entry = entries.get(number) or (next(iter(entries.values())) if entries else None)
            if not isinstance(entry, dict):
                return SendResult.unknown(self.name, "SMS.ru code 100 without the number's id")
            code = _code(entry.get("status_code"))
            sms_id = entry.get("sms_id")
            if code == OK and isinstance(sms_id, str) and _SMS_ID.fullmatch(sms_id):
                return SendResult.accepted(self.name, sms_id)
        if code == OK or code is None:
            return SendResult.unknown(self.name, "SMS.ru code 100 without the number's id")
        kind, meaning = ERROR_CODES.get(code, ("permanent", ""))
        reason = f"SMS.ru code {code}{f': {meaning}' if meaning else ''}"
        return _result(self.name, kind, reason, None)

    def status(self, provider_message_id: str) -> SendResult | None:
        """What ``sms/status`` says of ``provider_message_id`` (an ``sms_id``):
        ``accepted`` while queued, in transit or once delivered, ``permanent`` once it
        could not be delivered; ``None`` when SMS.ru cannot be asked or answers nothing
        it documents (``-1``: no such message, yet)."""
        form = {
            "api_id": self.options.api_id.get_secret_value(),
            "sms_id": provider_message_id,
            "json": "1",
        }
        try:
            response = self.client.post(f"{self.api}/sms/status", data=form)
        except httpx.HTTPError:
            return None
        body = _json(response) if response.status_code == 200 else None
        if body is None or _code(body.get("status_code")) != OK:
            return None
        sms = body.get("sms")
        entry = sms.get(provider_message_id) if isinstance(sms, dict) else None
        code = _code(entry.get("status_code")) if isinstance(entry, dict) else None
        if code is None or code not in MESSAGE_CODES:
            return None
        kind, meaning = MESSAGE_CODES[code]
        if kind == "accepted":
            return SendResult.accepted(self.name, provider_message_id)
        return SendResult.permanent(self.name, f"SMS.ru status {code}: {meaning}")

    def parse_receipt(self, request: InboundRequest) -> list[Receipt]:
        """The receipts in an SMS.ru callback (form fields ``data[]``, one record each;
        records other than ``sms_status``, or with a code not listed, give none), after
        the ``token`` query parameter is checked against ``receipt_token``. Raises
        :class:`ReceiptRejected` when it does not match or no ``receipt_token`` is set."""
        token = self.options.receipt_token
        if token is None:
            raise ReceiptRejected("smsru: receipt_token is not set: cannot check callbacks")
        given = request.query.get(TOKEN_PARAMETER, "")
        if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
            raise ReceiptRejected("smsru: the callback's token is missing or wrong")
        try:
            fields = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            raise ValueError("smsru: the body is not a form") from None
        receipts = []
        for key, record in fields:
            lines = record.replace("\r\n", "\n").split("\n") if _DATA.fullmatch(key) else []
            if len(lines) < 3 or lines[0] != "sms_status" or not _SMS_ID.fullmatch(lines[1]):
                continue
            code = _code(lines[2])
            status = RECEIPT_STATUSES.get(code or 0)
            if status is None:
                continue
            reason = f"smsru {code}: {MESSAGE_CODES[code or 0][1]}"
            at = _when(lines[3]) if len(lines) > 3 else None
            receipts.append(Receipt(self.name, lines[1], status, at=at, reason=reason))
        return receipts

    def receipt_answer(self) -> str:
        """The body SMS.ru expects in answer to a callback it may stop resending: ``100``."""
        return str(OK)

    def _failed(self, exc: httpx.HTTPError) -> SendResult:
        return transport_failure(self.name, exc)

    def close(self) -> None:
        self.client.close()


def _result(provider: str, kind: Kind, reason: str, retry_after: float | None) -> SendResult:
    if kind == "retryable":
        return SendResult.retryable(provider, reason, retry_after)
    if kind in ("unknown", "accepted"):  # accepted never reaches here from a refusal
        return SendResult.unknown(provider, reason)
    return SendResult.permanent(
        provider,
        reason,
        invalid_contact=kind == "invalid_contact",
        consent_withdrawn=kind == "consent",
    )


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _code(value: Any) -> int | None:
    """An SMS.ru code as a number (only digits ever reach a reason)."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _when(value: str) -> datetime | None:
    """A callback's time, a unix timestamp, or None."""
    if not value.strip().isdigit():
        return None
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (OverflowError, OSError, ValueError):
        return None
