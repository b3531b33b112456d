"""Sends email through Postmark's Email API, with plain httpx (no Postmark SDK).

A send is ``POST {base_url}/email`` with ``X-Postmark-Server-Token`` and a JSON body:
``From``, ``To``, ``Subject``, ``TextBody``, ``HtmlBody`` (its CSS inlined with
:mod:`css_inline`: some mail clients drop ``<style>``), ``MessageStream``, ``Tag``
(``scenario:step``), ``Metadata: {"delivery_id": …}``, ``TrackOpens``, ``TrackLinks`` and,
when the message's metadata has an https ``unsubscribe_url``, ``Headers`` with
``List-Unsubscribe`` and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058).
Postmark echoes ``Metadata`` in its webhooks and can search by it, so an ``unknown`` send
is found again by its delivery id.

What an answer means is table-driven: :data:`ERROR_CODES` (Postmark's ``ErrorCode`` →
what cartflow does) and :data:`HTTP_STATUSES`, read in this order:

1. HTTP 5xx: 503 retryable (``Retry-After`` honoured), any other **unknown** — a create is
   not idempotent, the message may exist;
2. the ``ErrorCode`` when :data:`ERROR_CODES` has it;
3. HTTP 429 retryable (``Retry-After`` honoured);
4. any other answer: permanent, Postmark's code in the reason.

A connection refused, a connect timeout or a pool timeout (the request never left) is
retryable; a read timeout or any failure after the request left is unknown. A reason never
holds Postmark's ``Message`` (it quotes addresses), an address or the token.

:meth:`PostmarkProvider.status` asks Postmark for a message by its ``MessageID``;
:meth:`PostmarkProvider.find` searches Postmark's sent messages by delivery id, and
:meth:`PostmarkProvider.lookup` (the engine's reconcile hook) uses one or the other;
:meth:`PostmarkProvider.parse_receipt` reads Postmark's webhooks after checking their HTTP
basic auth (:class:`~cartflow.engine.receipts.ReceiptRejected` otherwise), with
:mod:`cartflow.providers.postmark_webhooks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import css_inline
import httpx
import structlog
from pydantic import model_validator
from pydantic_core import PydanticCustomError

from cartflow.engine.receipts import InboundRequest, Receipt
from cartflow.engine.sending import Message, SendResult, Sent
from cartflow.providers.base import Provider
from cartflow.providers.http_answers import retry_after as _retry_after
from cartflow.providers.http_answers import transport_failure
from cartflow.providers.options import (
    Email,
    Flag,
    Mailbox,
    ProviderOptions,
    Seconds,
    Secret,
    Text,
    Url,
    addr_spec,
)
from cartflow.providers.postmark_webhooks import WebhookAuth, receipts_in

log = structlog.get_logger("cartflow.providers.postmark")

#: What cartflow does with an answer: the :class:`SendResult` kind, and for a permanent
#: one whether the contact is invalid.
Kind = Literal["accepted", "retryable", "unknown", "permanent", "invalid_contact"]

#: Postmark ``ErrorCode`` of a refused send → (kind, what it means). The list is at
#: https://postmarkapp.com/developer/api/overview#error-codes.
ERROR_CODES: Mapping[int, tuple[Kind, str]] = {
    406: (
        "invalid_contact",
        "inactive recipient (hard bounce, spam complaint or manual suppression)",
    ),
    300: ("permanent", "invalid email request (sender, recipient or body)"),
    10: ("permanent", "bad or missing server token: check server_token"),
    400: ("permanent", "sender signature not found: check sender"),
    401: ("permanent", "sender signature not confirmed: check sender"),
    405: ("permanent", "not allowed to send"),
    412: ("permanent", "account is pending"),
    413: ("permanent", "account may not send"),
    100: ("retryable", "Postmark maintenance"),
    429: ("retryable", "rate limit exceeded"),
}
#: HTTP status → kind, for the statuses with a rule of their own (other 5xx: unknown).
HTTP_STATUSES: Mapping[int, Kind] = {429: "retryable", 503: "retryable", 401: "permanent"}
#: Postmark message ``Status`` in its details or search (lower-cased) that mean it has the
#: message (:meth:`PostmarkProvider.status`).
HELD = frozenset({"queued", "sent", "processed"})
#: How long after cartflow's send Postmark's search is trusted to list the message, by the
#: ``Date`` Postmark answers with; an absence sooner is "cannot tell yet" (Postmark does
#: not document how soon a sent message can be searched: a margin, not a guarantee).
SEARCH_SETTLE = timedelta(minutes=5)
#: The metadata key the delivery id travels under (searched as ``metadata_delivery_id``).
DELIVERY_KEY = "delivery_id"
TOKEN_HEADER = "X-Postmark-Server-Token"
#: Never fetch a stylesheet a template links to while sending (a hang, or a request to any
#: host the template names); ``@media`` rules stay in a ``<style>`` (they cannot be inlined).
INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)


class PostmarkOptions(ProviderOptions):
    #: The Postmark server's API token (required; secret).
    server_token: Secret
    #: The From address, a confirmed sender signature or on a verified domain (required).
    sender: Email
    #: A Reply-To address; default none.
    reply_to: Email | None = None
    #: The message stream; default ``outbound`` (the default transactional stream).
    message_stream: Text = "outbound"
    #: Postmark's open tracking pixel; default false.
    track_opens: Flag = False
    #: Postmark's link tracking: ``None`` (default; cartflow signs its own links),
    #: ``HtmlAndText``, ``HtmlOnly`` or ``TextOnly``.
    track_links: Literal["None", "HtmlAndText", "HtmlOnly", "TextOnly"] = "None"
    #: Inline the HTML part's ``<style>`` rules into ``style=""`` attributes; default true.
    inline_css: Flag = True
    #: An address that unsubscribes by mail, added to ``List-Unsubscribe``; default none.
    list_unsubscribe_mailto: Mailbox | None = None
    #: The basic-auth user name in the webhook URL given to Postmark (secret); with
    #: ``webhook_password``. None: every webhook is refused.
    webhook_username: Secret | None = None
    #: The basic-auth password in the webhook URL given to Postmark (secret).
    webhook_password: Secret | None = None
    #: Where Postmark's API is (a loopback fake in tests).
    base_url: Url = "https://api.postmarkapp.com"
    #: Seconds to wait for an answer; default 10.
    timeout: Seconds = 10.0

    @model_validator(mode="after")
    def _both_or_neither(self) -> PostmarkOptions:
        if (self.webhook_username is None) != (self.webhook_password is None):
            raise PydanticCustomError(
                "cartflow_postmark_webhook",
                "needs both 'webhook_username' and 'webhook_password', or neither",
            )
        return self


class PostmarkProvider(Provider):
    name = "postmark"
    channels = ("email",)
    options_model = PostmarkOptions
    options: PostmarkOptions

    def __init__(self, client: httpx.Client | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.api = self.options.base_url.rstrip("/")
        self.headers = {
            TOKEN_HEADER: self.options.server_token.get_secret_value(),
            "Accept": "application/json",
        }
        username, password = self.options.webhook_username, self.options.webhook_password
        self.webhook_auth = (
            WebhookAuth(username.get_secret_value(), password.get_secret_value())
            if username is not None and password is not None
            else None
        )
        self.client = client or httpx.Client(timeout=self.options.timeout)

    # -- the message ----------------------------------------------------------------------------
    def compose(self, message: Message) -> dict[str, Any]:
        """The JSON body of Postmark's ``POST /email`` for ``message``."""
        body: dict[str, Any] = {
            "From": self.options.sender,
            "To": message.address,
            "Subject": " ".join(message.parts.get("subject", "").split()),
            "TextBody": message.parts.get("text", ""),
            "MessageStream": self.options.message_stream,
            "Metadata": {DELIVERY_KEY: message.delivery_id},
            "TrackOpens": self.options.track_opens,
            "TrackLinks": self.options.track_links,
        }
        if message.parts.get("html"):
            body["HtmlBody"] = self._html(message)
        if self.options.reply_to:
            body["ReplyTo"] = self.options.reply_to
        tag = _tag(message.metadata)
        if tag:
            body["Tag"] = tag
        unsubscribe = self._unsubscribe(message)
        if unsubscribe:
            body["Headers"] = [
                {"Name": "List-Unsubscribe", "Value": unsubscribe},
                {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
            ]
        return body

    def _html(self, message: Message) -> str:
        html = message.parts["html"]
        if not self.options.inline_css:
            return html
        try:
            inlined: str = INLINER.inline(html)
        except css_inline.InlineError:  # defensive: no remote loading, nothing known raises
            log.warning("postmark_css_not_inlined", delivery_id=message.delivery_id)
            return html
        return inlined

    def _unsubscribe(self, message: Message) -> str | None:
        url = message.metadata.get("unsubscribe_url")
        if not url:
            return None
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme != "https" or not parts.netloc or _unsafe(url):
            log.warning("postmark_unsubscribe_url_refused", delivery_id=message.delivery_id)
            return None
        links = [f"<{url}>"]
        if self.options.list_unsubscribe_mailto:
            links.append(f"<mailto:{self.options.list_unsubscribe_mailto}>")
        return ", ".join(links)

    # -- sending --------------------------------------------------------------------------------
    def send(self, message: Message) -> SendResult:
        if addr_spec(message.address) != message.address:
            return SendResult.permanent(
                self.name, "the address is not one email address", invalid_contact=True
            )
        try:
            response = self.client.post(
                f"{self.api}/email", json=self.compose(message), headers=self.headers
            )
        except httpx.HTTPError as exc:
            return self._failed(exc)
        if response.status_code == 200:
            found = _field(response, "MessageID")
            return SendResult.accepted(
                self.name, found if isinstance(found, str) and found else None
            )
        return self._refused(response)

    def _failed(self, exc: httpx.HTTPError) -> SendResult:
        return transport_failure(self.name, exc)

    def _refused(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        code = _code(_field(response, "ErrorCode"))
        kind: Kind
        meaning: str | None
        if status >= 500:
            kind = HTTP_STATUSES.get(status, "unknown")
            meaning = "Postmark unavailable" if kind == "retryable" else "the message may exist"
        elif code is not None and code in ERROR_CODES:
            kind, meaning = ERROR_CODES[code]
        else:
            kind = HTTP_STATUSES.get(status, "permanent")
            meaning = {429: "too many requests", 401: "check server_token"}.get(status)
        reason = f"HTTP {status}{_error(code, meaning)}"
        if kind == "retryable":
            return SendResult.retryable(self.name, reason, _retry_after(response))
        if kind == "unknown":
            return SendResult.unknown(self.name, reason)
        return SendResult.permanent(self.name, reason, invalid_contact=kind == "invalid_contact")

    # -- reconciling ----------------------------------------------------------------------------
    def status(self, provider_message_id: str) -> SendResult | None:
        """``accepted`` while Postmark holds the message (``Status`` queued, sent or
        processed in ``GET /messages/outbound/{id}/details``); ``None`` when Postmark cannot
        be asked or does not answer 200 with one of those. A later bounce arrives as a
        receipt, not here."""
        url = f"{self.api}/messages/outbound/{quote(provider_message_id, safe='')}/details"
        try:
            response = self.client.get(url, headers=self.headers)
        except httpx.HTTPError:
            return None
        state = _field(response, "Status") if response.status_code == 200 else None
        if not isinstance(state, str) or state.lower() not in HELD:
            return None
        return SendResult.accepted(self.name, provider_message_id)

    def find(self, delivery_id: str) -> SendResult | None:
        """``accepted`` (with its ``MessageID``) when Postmark's outbound message search by
        metadata has a message with this delivery id; ``None`` when it has none or cannot
        be asked."""
        searched = self._search(delivery_id)
        if searched is None or searched[0] is None:
            return None
        return SendResult.accepted(self.name, searched[0])

    def lookup(self, sent: Sent) -> SendResult | None:
        """What became of a send answered ``unknown``: by its ``MessageID`` when Postmark
        gave one, otherwise by :meth:`find`. Not in the search once Postmark's own clock
        (its ``Date``) is :data:`SEARCH_SETTLE` past the send: Postmark never took it, and
        the answer is ``permanent`` (nothing reached the shopper). ``None``: cannot tell."""
        if sent.provider_message_id is not None:
            return self.status(sent.provider_message_id)
        searched = self._search(sent.delivery_id)
        if searched is None:
            return None
        message_id, answered_at = searched
        if message_id is not None:
            return SendResult.accepted(self.name, message_id)
        sent_at = sent.sent_at if sent.sent_at.tzinfo else sent.sent_at.replace(tzinfo=UTC)
        if answered_at is None or answered_at < sent_at + SEARCH_SETTLE:
            return None
        return SendResult.permanent(
            self.name, "Postmark has no message with this delivery id: it was never sent"
        )

    def _search(self, delivery_id: str) -> tuple[str | None, datetime | None] | None:
        """(the ``MessageID`` listed for ``delivery_id`` or None, Postmark's ``Date``) from
        ``GET /messages/outbound?count=1&offset=0&metadata_delivery_id=…``; None when the
        search cannot be read."""
        query = {"count": "1", "offset": "0", f"metadata_{DELIVERY_KEY}": delivery_id}
        try:
            response = self.client.get(
                f"{self.api}/messages/outbound", params=query, headers=self.headers
            )
        except httpx.HTTPError:
            return None
        listed = _field(response, "Messages") if response.status_code == 200 else None
        if not isinstance(listed, list):
            return None
        answered_at = _when(response.headers.get("date"))
        for item in listed:
            metadata = item.get("Metadata") if isinstance(item, dict) else None
            found = item.get("MessageID") if isinstance(item, dict) else None
            ours = isinstance(metadata, dict) and metadata.get(DELIVERY_KEY) == delivery_id
            if ours and isinstance(found, str) and found:
                return found, answered_at
        return None, answered_at

    # -- webhooks -------------------------------------------------------------------------------
    def parse_receipt(self, request: InboundRequest) -> list[Receipt]:
        """The receipt in a Postmark webhook, after its HTTP basic auth is checked against
        ``webhook_username`` and ``webhook_password`` (constant-time). Raises
        :class:`ReceiptRejected` for missing or wrong credentials, or when none are set;
        :class:`ValueError` for a checked body that is not a JSON object."""
        return receipts_in(self.name, self.webhook_auth, request)

    def close(self) -> None:
        self.client.close()


def _tag(metadata: Mapping[str, Any]) -> str | None:
    """``scenario:step`` (or the scenario alone) from the message's metadata."""
    scenario, step = metadata.get("scenario"), metadata.get("step")
    if not isinstance(scenario, str) or not scenario:
        return None
    return f"{scenario}:{step}" if isinstance(step, str) and step else scenario


def _field(response: httpx.Response, name: str) -> Any:
    """``name`` from the JSON object answered, or None."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None


def _when(value: str | None) -> datetime | None:
    """An HTTP date (``Date`` header, always GMT), or None."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


def _code(value: Any) -> int | None:
    """A Postmark error code as a number (only digits ever reach a reason)."""
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _error(code: int | None, meaning: str | None) -> str:
    text = f", Postmark error {code}" if code is not None else ""
    return f"{text}: {meaning}" if meaning else text


def _unsafe(url: str) -> bool:
    """Characters that would end the ``<url>`` or the header."""
    return any(c in url for c in "<>\r\n\t ,")
