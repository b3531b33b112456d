"""Sends SMS through Twilio's Messages API, with plain httpx (no twilio SDK).

A send is ``POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json``, HTTP basic
auth ``account_sid:auth_token``, form fields ``To``, ``From`` (``sender``) or
``MessagingServiceSid``, ``Body`` and, when ``status_callback`` is set,
``StatusCallback=<status_callback>?d=<delivery_id>`` — Twilio has no metadata field, so the
delivery id travels in the callback URL, which the callback's signature covers.

What an answer means is table-driven: :data:`ERROR_CODES` (Twilio's error ``code`` →
what cartflow does) and :data:`HTTP_STATUSES`, read in this order:

1. HTTP 5xx: 503 retryable (``Retry-After`` honoured), any other **unknown** — a create is
   not idempotent, the message may exist;
2. the error ``code`` when :data:`ERROR_CODES` has it;
3. HTTP 429 retryable (``Retry-After`` honoured);
4. any other answer: permanent, Twilio's code in the reason.

A connection refused, a connect timeout or a pool timeout (the request never left) is
retryable; a read timeout or any failure after the request left is unknown. A reason
never holds Twilio's ``message`` (it quotes the phone number), a number or the token.

:meth:`TwilioProvider.status` asks Twilio what became of a message by its sid, and
:meth:`TwilioProvider.lookup` finds an ``unknown`` send without one in Twilio's message
list (by recipient, body and time);
:meth:`TwilioProvider.parse_receipt` reads Twilio's status callbacks after checking their
``X-Twilio-Signature`` (:class:`~cartflow.engine.receipts.ReceiptRejected` otherwise).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx
from pydantic import model_validator
from pydantic_core import PydanticCustomError

from cartflow.engine.inbound import Inbound
from cartflow.engine.receipts import InboundRequest, Receipt, ReceiptRejected, ReceiptStatus
from cartflow.engine.sending import Message, SendResult, Sent
from cartflow.providers.base import Provider
from cartflow.providers.http_answers import retry_after as _retry_after
from cartflow.providers.http_answers import transport_failure
from cartflow.providers.options import ProviderOptions, Seconds, Secret, Text, Url

#: What cartflow does with an answer: the :class:`SendResult` kind, and for a permanent
#: one whether the contact is invalid or the shopper withdrew consent.
Kind = Literal["accepted", "retryable", "unknown", "permanent", "invalid_contact", "consent"]

#: Twilio error ``code`` of a refused create → (kind, what it means). Every code is at
#: https://www.twilio.com/docs/errors/<code>.
ERROR_CODES: Mapping[int, tuple[Kind, str]] = {
    21610: ("consent", "the recipient replied STOP to this sender"),
    21211: ("invalid_contact", "invalid 'To' number"),
    21614: ("invalid_contact", "'To' number cannot receive SMS"),
    21612: ("permanent", "'To' number unreachable from this sender"),
    21606: ("permanent", "'From' number cannot send SMS"),
    21608: ("permanent", "trial account: 'To' number not verified"),
    20003: ("permanent", "authentication failed: check account_sid and auth_token"),
    20429: ("retryable", "too many requests"),
}
#: HTTP status → kind, for the statuses with a rule of their own (other 5xx: unknown).
HTTP_STATUSES: Mapping[int, Kind] = {429: "retryable", 503: "retryable"}
#: Errors of a delivered-or-not message (callbacks, :meth:`TwilioProvider.status`) that
#: mean the number itself is no good: unknown destination, landline or unreachable carrier.
#: (30003 unreachable handset and 30007 carrier filtering keep the contact.)
DELIVERY_ERRORS: Mapping[int, str] = {
    30005: "unknown destination",
    30006: "landline or unreachable carrier",
}
#: Twilio message status → what it says of a send (:meth:`TwilioProvider.status`).
MESSAGE_STATUSES: Mapping[str, Kind] = {
    **dict.fromkeys(("queued", "accepted", "scheduled", "sending", "sent"), "accepted"),
    **dict.fromkeys(("delivered", "read"), "accepted"),  # it arrived: nothing to resend
    **dict.fromkeys(("failed", "undelivered", "canceled"), "permanent"),
}
#: Twilio callback ``MessageStatus`` → receipt (statuses before ``sent`` give none).
RECEIPT_STATUSES: Mapping[str, ReceiptStatus] = {
    "sent": ReceiptStatus.ACCEPTED,
    "delivered": ReceiptStatus.DELIVERED,
    "read": ReceiptStatus.OPENED,
    "undelivered": ReceiptStatus.FAILED,
    "failed": ReceiptStatus.FAILED,
    "canceled": ReceiptStatus.FAILED,
}
API = "2010-04-01"
#: How much earlier than cartflow's send time a listed message may be dated (clock skew).
LIST_SLACK = timedelta(minutes=1)
SIGNATURE = "x-twilio-signature"


class TwilioOptions(ProviderOptions):
    #: The account's SID, ``AC…`` (required).
    account_sid: Text
    #: The account's auth token (required; secret): basic auth and callback signatures.
    auth_token: Secret
    #: The number (E.164) or alphanumeric sender id the SMS comes from: Twilio's ``From``.
    sender: Text | None = None
    #: A Messaging Service (``MG…``) that picks the sender; instead of ``sender``.
    messaging_service_sid: Text | None = None
    #: Where Twilio's API is (a loopback fake in tests).
    base_url: Url = "https://api.twilio.com"
    #: The public URL of cartflow's ``/v1/providers/twilio/status``; none: no callbacks.
    status_callback: Url | None = None
    #: The public URL of cartflow's ``/v1/providers/twilio/inbound``, as set for incoming
    #: messages on the number in Twilio's console; none: replies (STOP) are not taken.
    inbound_url: Url | None = None
    #: Seconds to wait for an answer; default 10.
    timeout: Seconds = 10.0

    @model_validator(mode="after")
    def _one_sender(self) -> TwilioOptions:
        if self.sender is None and self.messaging_service_sid is None:
            raise PydanticCustomError(
                "cartflow_sender", "needs setting 'sender' or 'messaging_service_sid'"
            )
        if self.sender is not None and self.messaging_service_sid is not None:
            raise PydanticCustomError(
                "cartflow_sender",
                "takes setting 'sender' or 'messaging_service_sid', not both",
            )
        return self


class TwilioProvider(Provider):
    name = "twilio"
    channels = ("sms",)
    options_model = TwilioOptions
    options: TwilioOptions

    def __init__(self, client: httpx.Client | None = None, **options: Any) -> None:
        super().__init__(**options)
        sid = self.options.account_sid
        self.messages = (
            f"{self.options.base_url.rstrip('/')}/{API}/Accounts/{quote(sid, safe='')}/Messages"
        )
        self.auth = httpx.BasicAuth(sid, self.options.auth_token.get_secret_value())
        self.client = client or httpx.Client(timeout=self.options.timeout)

    def send(self, message: Message) -> SendResult:
        form = {"To": message.address, "Body": message.parts.get("text", "")}
        if self.options.sender is not None:
            form["From"] = self.options.sender
        else:
            form["MessagingServiceSid"] = str(self.options.messaging_service_sid)
        if self.options.status_callback:
            form["StatusCallback"] = self.callback_url({"d": message.delivery_id})
        try:
            response = self.client.post(f"{self.messages}.json", data=form, auth=self.auth)
        except httpx.HTTPError as exc:
            return self._failed(exc)
        if response.status_code in (200, 201):
            sid = _field(response, "sid")
            return SendResult.accepted(self.name, sid if isinstance(sid, str) and sid else None)
        return self._refused(response)

    def status(self, provider_message_id: str) -> SendResult | None:
        """``accepted`` while Twilio holds or has delivered the message, ``permanent`` once
        it failed (30005/30006 mark the contact invalid); ``None`` when Twilio cannot be
        asked or does not answer 200 with a status it documents."""
        url = f"{self.messages}/{quote(provider_message_id, safe='')}.json"
        try:
            response = self.client.get(url, auth=self.auth)
        except httpx.HTTPError:
            return None
        state = _field(response, "status") if response.status_code == 200 else None
        kind = MESSAGE_STATUSES.get(state) if isinstance(state, str) else None
        if kind is None:
            return None
        if kind == "accepted":
            return SendResult.accepted(self.name, provider_message_id)
        code = _code(_field(response, "error_code"))
        return SendResult.permanent(
            self.name,
            f"Twilio status {state}{_error(code, DELIVERY_ERRORS.get(code or 0))}",
            invalid_contact=code in DELIVERY_ERRORS,
        )

    def lookup(self, sent: Sent) -> SendResult | None:
        """What became of a send answered ``unknown``: by its sid when Twilio gave one,
        otherwise from Twilio's message list for the recipient (``GET …/Messages.json``,
        ``To`` and ``From``/none, newest first), the message with the same body created
        since a minute before the send. None in the list: Twilio never created it, and
        the answer is ``permanent`` (nothing reached the shopper). ``None`` when Twilio
        cannot be asked."""
        if sent.provider_message_id is not None:
            return self.status(sent.provider_message_id)
        if not sent.address:
            return None
        query = {"To": sent.address, "PageSize": "50"}
        if self.options.sender is not None:
            query["From"] = self.options.sender
        try:
            response = self.client.get(f"{self.messages}.json", params=query, auth=self.auth)
        except httpx.HTTPError:
            return None
        listed = _field(response, "messages") if response.status_code == 200 else None
        if not isinstance(listed, list):
            return None
        body, since = sent.parts.get("text", ""), sent.sent_at - LIST_SLACK
        for item in listed:
            if not isinstance(item, dict) or item.get("body") != body:
                continue
            created = _when(item.get("date_created"))
            if created is not None and created >= since and isinstance(item.get("sid"), str):
                return self.status(item["sid"])
        return SendResult.permanent(self.name, "Twilio has no such message: it was never created")

    def parse_receipt(self, request: InboundRequest) -> list[Receipt]:
        """The receipt in a Twilio status callback, after its signature is checked against
        ``status_callback`` with the request's query string (:meth:`callback_url`).
        Raises :class:`ReceiptRejected` for a missing or wrong signature."""
        if not self.options.status_callback:
            raise ReceiptRejected("twilio: status_callback is not set: cannot check signatures")
        fields = dict(self._signed(request, str(self.options.status_callback)))
        sid, state = fields.get("MessageSid", ""), fields.get("MessageStatus", "")
        status = RECEIPT_STATUSES.get(state)
        if not sid or status is None:
            return []
        code = _code(fields.get("ErrorCode"))
        if status is ReceiptStatus.FAILED and code in DELIVERY_ERRORS:
            status = ReceiptStatus.UNDELIVERABLE  # the number is no good: contact invalid
        reason = f"twilio {state}{_error(code, DELIVERY_ERRORS.get(code or 0))}"
        return [Receipt(self.name, sid, status, reason=reason)]

    def parse_inbound(self, request: InboundRequest) -> list[Inbound]:
        """The SMS a shopper sent to the number (Twilio's incoming-message webhook), after
        its ``X-Twilio-Signature`` is checked against ``inbound_url``."""
        if not self.options.inbound_url:
            raise ReceiptRejected("twilio: inbound_url is not set: cannot check signatures")
        params = self._signed(request, str(self.options.inbound_url))
        fields = dict(params)
        sid, sender = fields.get("MessageSid", ""), fields.get("From", "")
        if not sid or not sender:
            return []
        return [Inbound(self.name, "sms", sender, fields.get("Body", ""), sid)]

    def inbound_answer(self) -> tuple[bytes, str]:
        """Empty TwiML: take the message, answer nothing (Twilio itself answers STOP)."""
        return b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>', "text/xml"

    def _signed(self, request: InboundRequest, url: str) -> list[tuple[str, str]]:
        """The form parameters of a request Twilio signed for ``url`` (with the request's
        query added); :class:`ReceiptRejected` when the signature is missing or wrong."""
        given = next((v for k, v in request.headers.items() if k.lower() == SIGNATURE), None)
        if not given:
            raise ReceiptRejected("twilio: no X-Twilio-Signature header")
        try:
            params = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            raise ReceiptRejected("twilio: the body is not a form") from None
        expected = self.signature(_with_query(url, request.query), params)
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise ReceiptRejected("twilio: X-Twilio-Signature does not match")
        return params

    def callback_url(self, query: Mapping[str, str]) -> str:
        """``status_callback`` with ``query`` added (the parameters it has of its own
        stay as written): the URL a send gives Twilio, and the one a callback is signed
        for."""
        return _with_query(str(self.options.status_callback), query)

    def signature(self, url: str, params: list[tuple[str, str]]) -> str:
        """Twilio's request signature: base64 of HMAC-SHA1, keyed with the auth token, of
        the URL followed by every POST parameter's name and value, sorted by name."""
        data = url + "".join(name + value for name, value in sorted(params))
        key = self.options.auth_token.get_secret_value().encode()
        return base64.b64encode(hmac.new(key, data.encode(), hashlib.sha1).digest()).decode()

    def _failed(self, exc: httpx.HTTPError) -> SendResult:
        return transport_failure(self.name, exc)

    def _refused(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        code = _code(_field(response, "code"))
        kind: Kind
        meaning: str | None
        if status >= 500:
            kind = HTTP_STATUSES.get(status, "unknown")
            meaning = "Twilio unavailable" if kind == "retryable" else "the message may exist"
        elif code is not None and code in ERROR_CODES:
            kind, meaning = ERROR_CODES[code]
        else:
            kind = HTTP_STATUSES.get(status, "permanent")
            meaning = "too many requests" if kind == "retryable" else None
        reason = f"HTTP {status}{_error(code, meaning)}"
        if kind == "retryable":
            return SendResult.retryable(self.name, reason, _retry_after(response))
        if kind == "unknown":
            return SendResult.unknown(self.name, reason)
        return SendResult.permanent(
            self.name,
            reason,
            invalid_contact=kind == "invalid_contact",
            consent_withdrawn=kind == "consent",
        )

    def close(self) -> None:
        self.client.close()


def _with_query(url: str, query: Mapping[str, str]) -> str:
    """``url`` with ``query`` added (the parameters it has of its own stay as written)."""
    own = {key for key, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    added = urlencode([(k, v) for k, v in query.items() if k not in own])
    if not added:
        return url
    return f"{url}{'&' if urlsplit(url).query else '?'}{added}"


def _field(response: httpx.Response, name: str) -> Any:
    """``name`` from the JSON object answered, or None."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None


def _when(value: Any) -> datetime | None:
    """A Twilio date (RFC 2822, ``Wed, 02 Dec 2026 13:50:00 +0000``), or None."""
    if not isinstance(value, str):
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _code(value: Any) -> int | None:
    """A Twilio error code as a number (only digits ever reach a reason)."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _error(code: int | None, meaning: str | None) -> str:
    text = f", Twilio error {code}" if code is not None else ""
    return f"{text}: {meaning}" if meaning else text
