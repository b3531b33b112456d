"""Sends SMS through Infobip's SMS API v3, with plain httpx (no Infobip SDK).

A send is ``POST {base_url}/sms/3/messages``, header ``Authorization: App <api_key>``, JSON
``{"messages": [{"sender", "destinations": [{"to", "messageId"}], "content": {"text"},
"webhooks": {"delivery": {"url"}, "contentType", "callbackData"}}]}``. The ``messageId`` is
cartflow's delivery id — Infobip lets the client choose it — so the provider message id, the
id of every delivery report and the key of a log lookup are all cartflow's own.

What an answer means is table-driven, read in this order:

1. HTTP 5xx: 503 retryable (``Retry-After`` honoured), any other **unknown** — a create is
   not idempotent, the message may exist;
2. any other HTTP status other than 200: :data:`HTTP_STATUSES`, else permanent with
   Infobip's ``errorCode`` in the reason;
3. HTTP 200: the message's ``status`` — its ``name`` when :data:`SEND_STATUSES` has it,
   else its ``groupName`` (:data:`GROUPS`); a refused message whose ``error`` says
   ``permanent: false`` is retryable.

A connection refused, a connect timeout or a pool timeout (the request never left) is
retryable; a read timeout or any failure after the request left is unknown. A reason
holds Infobip's status and error *names* only — never a ``description`` or a violation
(they may quote the number), the number or the key.

:meth:`InfobipProvider.status` reads Infobip's message logs by ``messageId``
(``GET /sms/3/logs?messageId=…``), and :meth:`InfobipProvider.lookup` asks by the
delivery id when no vendor id came back. :meth:`InfobipProvider.parse_receipt` reads
delivery reports after checking the shared secret configured for them — Infobip does not
sign its webhooks, so without ``receipt_token`` or ``receipt_username``/``receipt_password``
every callback is refused (:class:`~cartflow.engine.receipts.ReceiptRejected`).
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

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

#: HTTP status of a refused send → (kind, what it means); other 5xx: unknown, other
#: statuses: permanent.
HTTP_STATUSES: Mapping[int, tuple[Kind, str]] = {
    401: ("permanent", "authentication failed: check api_key"),
    403: ("permanent", "the API key may not send SMS (its scopes)"),
    429: ("retryable", "too many requests"),
    503: ("retryable", "Infobip unavailable"),
}
#: Message status ``name`` in a send's 200 answer → (kind, what it means). Every name is
#: at https://www.infobip.com/docs/essentials/api-essentials/response-status-and-error-codes.
SEND_STATUSES: Mapping[str, tuple[Kind, str]] = {
    "REJECTED_DESTINATION": ("invalid_contact", "invalid destination number"),
    "REJECTED_PREFIX_MISSING": ("invalid_contact", "number prefix or length not recognised"),
    "REJECTED_DND": ("consent", "the recipient is on a do-not-disturb register"),
    "REJECTED_DESTINATION_BLOCKLISTED": ("consent", "the number is blocklisted"),
    "REJECTED_FLOODING_FILTER": ("retryable", "too many messages to this number this hour"),
    "REJECTED_SYSTEM_ERROR": ("retryable", "Infobip system error"),
    "REJECTED_DUPLICATE_MESSAGE_ID": ("unknown", "a message with this delivery id exists"),
    "REJECTED_NOT_ENOUGH_CREDITS": ("permanent", "the account is out of credits"),
    "REJECTED_PREPAID_PACKAGE_EXPIRED": ("permanent", "the account's credits expired"),
    "REJECTED_SOURCE": ("permanent", "sender not registered on the account"),
    "REJECTED_SENDER": ("permanent", "sender blocklisted on the account"),
    "REJECTED_NETWORK": ("permanent", "network not covered by the account"),
    "REJECTED_ROUTE_NOT_AVAILABLE": ("permanent", "no route set up on the account"),
    "REJECTED_DESTINATION_NOT_REGISTERED": ("permanent", "test account: number not registered"),
    "REJECTED_MESSAGE_TOO_LONG": ("permanent", "message too long"),
}
#: Message status ``groupName`` → kind, for the names :data:`SEND_STATUSES` does not list.
GROUPS: Mapping[str, Kind] = {
    "PENDING": "accepted",
    "DELIVERED": "accepted",
    "UNDELIVERABLE": "permanent",
    "EXPIRED": "permanent",
    "REJECTED": "permanent",
}
#: Delivery ``error`` names (reports, logs) that say the number is no good, or that the
#: shopper blocked the sender; any other error keeps the contact.
DELIVERY_ERRORS: Mapping[str, tuple[Kind, str]] = {
    "EC_UNKNOWN_SUBSCRIBER": ("invalid_contact", "unknown subscriber"),
    "EC_TELESERVICE_NOT_PROVISIONED": ("invalid_contact", "the number cannot receive SMS"),
    "EC_DEST_ADDRESS_UNABLE_TO_RECEIVE_SMS": ("invalid_contact", "the number cannot receive SMS"),
    "EC_SC_BLOCKED_BY_END_USER": ("consent", "the recipient blocked this sender"),
}
#: The one final status of a delivered message (``DELIVERED_TO_OPERATOR`` is not: its
#: receipt is ``accepted``).
HANDSET = "DELIVERED_TO_HANDSET"
#: The status of a send refused because its ``messageId`` was used before: it says
#: nothing of the message that holds the id.
DUPLICATE = "REJECTED_DUPLICATE_MESSAGE_ID"
#: A vendor name or code as it may appear in a reason (anything else is left out).
_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
#: An inbound message's id and sender as Infobip writes them; anything else is skipped.
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
_NUMBER = re.compile(r"\+?[0-9]{5,20}")
#: The query parameter that carries ``receipt_token`` on the callback URL.
TOKEN_PARAMETER = "token"


class InfobipOptions(ProviderOptions):
    #: The account's API key (required; secret): ``Authorization: App <api_key>``.
    api_key: Secret
    #: The account's own API address, ``https://<id>.api.infobip.com`` (required).
    base_url: Url
    #: The sender id or number the SMS comes from; none: the account's default.
    sender: Text | None = None
    #: The public URL of cartflow's ``/v1/providers/infobip/status``; none: no webhook URL
    #: is given per message (a subscription set up at Infobip may still send reports).
    status_callback: Url | None = None
    #: A shared secret added to ``status_callback`` as ``?token=`` and required on every
    #: delivery report (secret).
    receipt_token: Secret | None = None
    #: HTTP basic auth user Infobip sends with delivery reports (set in Infobip's
    #: subscription security settings); with ``receipt_password``.
    receipt_username: Text | None = None
    #: HTTP basic auth password of delivery reports (secret); with ``receipt_username``.
    receipt_password: Secret | None = None
    #: Seconds to wait for an answer; default 10.
    timeout: Seconds = 10.0

    @model_validator(mode="after")
    def _both_or_neither(self) -> InfobipOptions:
        if (self.receipt_username is None) != (self.receipt_password is None):
            raise PydanticCustomError(
                "cartflow_receipt_auth",
                "takes settings 'receipt_username' and 'receipt_password' together",
            )
        return self


class InfobipProvider(Provider):
    name = "infobip"
    channels = ("sms",)
    options_model = InfobipOptions
    options: InfobipOptions

    def __init__(self, client: httpx.Client | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.api = self.options.base_url.rstrip("/")
        self.headers = {
            "Authorization": f"App {self.options.api_key.get_secret_value()}",
            "Accept": "application/json",
        }
        self.client = client or httpx.Client(timeout=self.options.timeout)

    def send(self, message: Message) -> SendResult:
        sms: dict[str, Any] = {
            "destinations": [{"to": message.address.lstrip("+"), "messageId": message.delivery_id}],
            "content": {"text": message.parts.get("text", "")},
        }
        if self.options.sender is not None:
            sms["sender"] = self.options.sender
        if self.options.status_callback:
            sms["webhooks"] = {
                "delivery": {"url": self.callback_url()},
                "contentType": "application/json",
                "callbackData": message.delivery_id,
            }
        try:
            response = self.client.post(
                f"{self.api}/sms/3/messages", json={"messages": [sms]}, headers=self.headers
            )
        except httpx.HTTPError as exc:
            return self._failed(exc)
        if not 200 <= response.status_code < 300:
            return self._refused(response)
        sent = _first(_field(response, "messages"))
        if sent is None:  # a 200 without a message: it may exist
            return SendResult.unknown(self.name, "HTTP 200 without a message status")
        echoed = sent.get("messageId")
        own = echoed if isinstance(echoed, str) and echoed else message.delivery_id
        return self._judge(sent, own, "HTTP 200, Infobip status")

    def status(self, provider_message_id: str) -> SendResult | None:
        """What Infobip's message logs say of ``provider_message_id`` (``accepted`` while
        pending or once delivered, ``permanent`` once it failed); ``None`` when Infobip
        cannot be asked, does not answer 200, or has no log of it (yet)."""
        try:
            response = self.client.get(
                f"{self.api}/sms/3/logs",
                params={"messageId": provider_message_id},
                headers=self.headers,
            )
        except httpx.HTTPError:
            return None
        results = _field(response, "results") if response.status_code == 200 else None
        for item in results if isinstance(results, list) else []:
            if not isinstance(item, dict) or item.get("messageId") != provider_message_id:
                continue
            if _text(item.get("status"), "name") == DUPLICATE or _kind(item)[0] is None:
                continue  # a resend refused for its id, or a group Infobip does not document
            return self._judge(item, provider_message_id, "Infobip status", final=True)
        return None

    def lookup(self, sent: Sent) -> SendResult | None:
        """What became of a send answered ``unknown``: its ``messageId`` is the delivery id,
        so Infobip's logs are asked by the vendor's id when one came back, else by that."""
        return self.status(sent.provider_message_id or sent.delivery_id)

    def parse_receipt(self, request: InboundRequest) -> list[Receipt]:
        """The receipts in an Infobip delivery report (``{"results": [...]}``), after the
        configured secret is checked: ``receipt_token`` against the ``token`` query
        parameter, ``receipt_username``/``receipt_password`` against basic auth (each that is
        set must match). Raises :class:`ReceiptRejected` when it does not, or when neither
        is set; ``ValueError`` for a checked body that is not a report."""
        self._verify(request)
        try:
            body = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ValueError("infobip: the body is not a JSON delivery report") from None
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise ValueError("infobip: the body has no 'results' list")
        receipts = []
        for item in results:
            receipt = self._receipt(item) if isinstance(item, dict) else None
            if receipt is not None:
                receipts.append(receipt)
        return receipts

    def parse_inbound(self, request: InboundRequest) -> list[Inbound]:
        """The SMS shoppers sent to the account's number, as Infobip forwards them
        (``MO_JSON_2``: ``{"results": [{"messageId", "from", "to", "text", "receivedAt"}]}``),
        after the same check as delivery reports (``receipt_token`` in the URL and/or basic
        auth; :class:`ReceiptRejected` otherwise). Set the number's forwarding URL to
        ``…/v1/providers/infobip/inbound?token=<receipt_token>``."""
        self._verify(request)
        try:
            body = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ValueError("infobip: the body is not JSON") from None
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise ValueError("infobip: the body has no 'results' list")
        found = []
        for item in results:
            if not isinstance(item, dict):
                continue
            message_id, sender, text = item.get("messageId"), item.get("from"), item.get("text")
            if not (
                isinstance(message_id, str)
                and _MESSAGE_ID.fullmatch(message_id)
                and isinstance(sender, str)
                and _NUMBER.fullmatch(sender)
                and isinstance(text, str)
            ):
                continue
            number = sender if sender.startswith("+") else f"+{sender}"
            found.append(
                Inbound(self.name, "sms", number, text, message_id, _when(item.get("receivedAt")))
            )
        return found

    def callback_url(self) -> str:
        """``status_callback`` with ``token=<receipt_token>`` added when one is set: the
        webhook URL a send gives Infobip."""
        url = str(self.options.status_callback)
        token = self.options.receipt_token
        if token is None:
            return url
        own = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        if TOKEN_PARAMETER in own:
            return url
        added = urlencode({TOKEN_PARAMETER: token.get_secret_value()})
        return f"{url}{'&' if urlsplit(url).query else '?'}{added}"

    def _verify(self, request: InboundRequest) -> None:
        token, user = self.options.receipt_token, self.options.receipt_username
        if token is None and user is None:
            raise ReceiptRejected(
                "infobip: neither receipt_token nor receipt_username is set: cannot check callbacks"
            )
        if token is not None:
            given = request.query.get(TOKEN_PARAMETER, "")
            if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
                raise ReceiptRejected("infobip: the callback's token is missing or wrong")
        if user is not None and self.options.receipt_password is not None:
            secret = f"{user}:{self.options.receipt_password.get_secret_value()}"
            expected = f"Basic {base64.b64encode(secret.encode()).decode()}"
            given = next(
                (v for k, v in request.headers.items() if k.lower() == "authorization"), ""
            )
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise ReceiptRejected("infobip: the callback's basic auth is missing or wrong")

    def _receipt(self, item: Mapping[str, Any]) -> Receipt | None:
        message_id = item.get("messageId")
        kind, meaning = _kind(item)
        status = _text(item.get("status"), "name")
        if not isinstance(message_id, str) or not message_id or kind in (None, "unknown"):
            return None  # undocumented, or a resend refused for its id (not this message)
        if kind == "accepted":
            if _text(item.get("status"), "groupName") != "DELIVERED":
                return None  # still pending: nothing to report
            receipt = ReceiptStatus.DELIVERED if status == HANDSET else ReceiptStatus.ACCEPTED
        elif kind == "invalid_contact":
            receipt = ReceiptStatus.UNDELIVERABLE
        elif kind == "consent":
            receipt = ReceiptStatus.UNSUBSCRIBED
        else:
            receipt = ReceiptStatus.FAILED
        reason = f"infobip {_described(item)}{f': {meaning}' if meaning else ''}"
        return Receipt(self.name, message_id, receipt, at=_when(item.get("doneAt")), reason=reason)

    def _judge(
        self, item: Mapping[str, Any], message_id: str, prefix: str, final: bool = False
    ) -> SendResult:
        """The result a message's status gives; ``final`` (a logged message): one that
        did not arrive failed for good, whatever a send would have made of it."""
        kind, meaning = _kind(item)
        if kind == "accepted":
            return SendResult.accepted(self.name, message_id)
        if final and kind in ("retryable", "unknown"):
            kind = "permanent"
        reason = f"{prefix} {_described(item)}{f': {meaning}' if meaning else ''}"
        return _result(self.name, kind or "unknown", reason, None)

    def _failed(self, exc: httpx.HTTPError) -> SendResult:
        return transport_failure(self.name, exc)

    def _refused(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        kind, meaning = HTTP_STATUSES.get(status, ("permanent", ""))
        if status >= 500 and status not in HTTP_STATUSES:
            kind, meaning = "unknown", "the message may exist"
        code = _error_code(response)
        reason = f"HTTP {status}{f', Infobip error {code}' if code else ''}"
        reason += f": {meaning}" if meaning else ""
        return _result(self.name, kind, reason, _retry_after(response))

    def close(self) -> None:
        self.client.close()


def _kind(item: Mapping[str, Any]) -> tuple[Kind | None, str]:
    """What a message's ``status`` and ``error`` say: the kind (None: a group Infobip
    does not document) and its meaning from the tables."""
    name = _text(item.get("status"), "name") or ""
    group = _text(item.get("status"), "groupName") or ""
    error = _text(item.get("error"), "name") or ""
    if name in SEND_STATUSES:
        return SEND_STATUSES[name]
    kind = GROUPS.get(group)
    if kind == "permanent" and error in DELIVERY_ERRORS:
        return DELIVERY_ERRORS[error]
    if kind == "permanent" and _permanent(item) is False and group == "REJECTED":
        return "retryable", "Infobip says it is not permanent"
    return kind, ""


def _described(item: Mapping[str, Any]) -> str:
    """``<status name>`` and ``, error <error name>`` (names only: never a description)."""
    name = _text(item.get("status"), "name") or _text(item.get("status"), "groupName") or "?"
    error = _text(item.get("error"), "name")
    return f"{name}{f', error {error}' if error and error != 'NO_ERROR' else ''}"


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


def _text(value: Any, key: str) -> str | None:
    """``value[key]`` when it is a name fit for a reason, else None."""
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, str) and _NAME.fullmatch(found) else None


def _permanent(item: Mapping[str, Any]) -> bool | None:
    error = item.get("error")
    flag = error.get("permanent") if isinstance(error, dict) else None
    return flag if isinstance(flag, bool) else None


def _first(value: Any) -> dict[str, Any] | None:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return None


def _field(response: httpx.Response, name: str) -> Any:
    """``name`` from the JSON object answered, or None."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None


def _error_code(response: httpx.Response) -> str | None:
    """Infobip's error code: ``errorCode`` (API v3) or
    ``requestError.serviceException.messageId`` (older APIs) — only when it is a name."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    code = body.get("errorCode")
    if code is None:
        request_error = body.get("requestError")
        service = request_error.get("serviceException") if isinstance(request_error, dict) else {}
        code = service.get("messageId") if isinstance(service, dict) else None
    return code if isinstance(code, str) and _NAME.fullmatch(code) else None


def _when(value: Any) -> datetime | None:
    """An Infobip time (``2019-11-09T16:00:00.000+0000`` or with ``+05:30``), or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
