"""Sends push notifications through Firebase Cloud Messaging's HTTP v1 API, with plain
httpx and PyJWT (no firebase-admin, no google-auth).

A send is ``POST {base_url}/v1/projects/{project_id}/messages:send`` with
``Authorization: Bearer <access token>`` and ``{"message": {...}}``: the device's
registration ``token`` (the push contact's address), ``notification`` (the template's
``title`` and ``body``), ``data`` (all strings: ``cartflow_delivery_id``, ``cart_id``,
``url``), one collapse id per cart (``android.collapse_key`` and the ``apns-collapse-id``
header: a newer reminder about the same cart replaces one still waiting), the time to
live (``android.ttl``, ``webpush.headers.TTL``, ``apns-expiration``), the link opened by
a web notification (``webpush.fcm_options.link``, when the template gives an https
``url``) and ``fcm_options.analytics_label`` (scenario and step, for FCM's own reports).
FCM answers ``{"name": "projects/P/messages/ID"}``: ``name`` is the provider message id.

The access token comes from the service account: a JWT (RS256, signed with the account's
private key; ``iss`` its ``client_email``, ``scope`` firebase.messaging, ``aud`` the
token URL, an hour long) exchanged at ``token_url`` (``grant_type=
urn:ietf:params:oauth:grant-type:jwt-bearer``) by
:class:`~cartflow.providers.google_oauth.AccessTokens`, which keeps it for every worker
thread (one refresh at a time) until five minutes before it expires. A 401 from FCM
without an FCM error code drops it and the send is tried once more with a new one.

What an answer means is table-driven, read in this order:

1. ``INVALID_ARGUMENT`` about the registration token (a ``message.token`` field violation,
   or FCM's message naming the registration token): :data:`INVALID_TOKEN`;
2. the ``errorCode`` of the ``google.firebase.fcm.v1.FcmError`` in ``error.details``, when
   :data:`ERROR_CODES` has it;
3. the HTTP status: :data:`HTTP_STATUSES`, then any other 5xx retryable — FCM says to
   retry, and a duplicate push is cheap (cartflow's policy for non-idempotent creates,
   "other 5xx → unknown", is deliberately not applied here; see docs/providers-fcm.md);
4. any other answer: permanent, the HTTP status and FCM's code in the reason.

A retryable answer honours ``Retry-After``; ``QUOTA_EXCEEDED`` without one waits
:data:`QUOTA_RETRY_AFTER`. A connection refused, a connect or pool timeout, or no access
token to be had (the token endpoint unreachable or busy) is retryable; a read timeout or
a connection lost once the send left is **unknown** — and final: FCM has no API to look a
message up, so :meth:`~cartflow.providers.base.Provider.can_look_up` is false.

A reason never holds FCM's ``message`` text, the registration token, the access token or
anything of the service account.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from cartflow.engine.sending import Message, SendResult
from cartflow.providers.base import Provider
from cartflow.providers.google_oauth import AccessTokens, TokenRefused, service_account
from cartflow.providers.http_answers import retry_after as _retry_after
from cartflow.providers.http_answers import transport_failure
from cartflow.providers.options import ProviderOptions, Seconds, Secret, Text, Url

#: What cartflow does with an answer: the :class:`SendResult` kind, and for a permanent
#: one whether the contact (the registration token) is no good.
Kind = Literal["retryable", "permanent", "invalid_contact"]

#: FCM ``errorCode`` (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode)
#: → (kind, what it means).
ERROR_CODES: Mapping[str, tuple[Kind, str]] = {
    "UNREGISTERED": ("invalid_contact", "the registration token is no longer valid"),
    "SENDER_ID_MISMATCH": ("invalid_contact", "the token belongs to another Firebase project"),
    "INVALID_ARGUMENT": ("permanent", "FCM refused the message as invalid"),
    "THIRD_PARTY_AUTH_ERROR": ("permanent", "the project's APNs or web push credential failed"),
    "APNS_AUTH_ERROR": ("permanent", "the project's APNs credential failed"),  # older name
    "QUOTA_EXCEEDED": ("retryable", "sending quota exceeded"),
    "UNAVAILABLE": ("retryable", "FCM unavailable"),
    "INTERNAL": ("retryable", "FCM internal error"),
}
#: ``INVALID_ARGUMENT`` when it is about the registration token (a field violation on
#: ``message.token``, or FCM's message naming the registration token).
INVALID_TOKEN: tuple[Kind, str] = ("invalid_contact", "not a valid FCM registration token")
#: HTTP status → (kind, meaning), for answers without an FCM error code (a 401 is first
#: retried once with a new access token). Other 5xx: retryable.
HTTP_STATUSES: Mapping[int, tuple[Kind, str]] = {
    401: ("permanent", "authentication failed: check service_account"),
    403: ("permanent", "permission denied: check the service account's role and project_id"),
    404: ("permanent", "no such project: check project_id"),
    429: ("retryable", "too many requests"),
}
#: Seconds to wait after ``QUOTA_EXCEEDED`` when FCM gives no ``Retry-After``.
QUOTA_RETRY_AFTER = 60.0
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
#: FCM's rule for ``fcm_options.analytics_label``.
LABEL = re.compile(r"[a-zA-Z0-9\-_.~%]{1,50}")
#: Codes shown in reasons: one plain word.
WORD = re.compile(r"[A-Za-z_]{1,40}")


class FcmOptions(ProviderOptions):
    #: The service-account key file's JSON text (required; secret), from the
    #: environment: ``"${FCM_SERVICE_ACCOUNT}"``.
    service_account: Secret
    #: The Firebase project; default: the key file's ``project_id``.
    project_id: Text | None = None
    #: Where FCM's API is (a loopback fake in tests).
    base_url: Url = "https://fcm.googleapis.com"
    #: Google's OAuth 2.0 token endpoint (a loopback fake in tests); also the assertion's
    #: ``aud``.
    token_url: Url = "https://oauth2.googleapis.com/token"
    #: Seconds FCM keeps an undelivered notification; default a day (at most 4 weeks).
    ttl: int = Field(default=86400, ge=0, le=2_419_200)
    #: Seconds to wait for an answer; default 10.
    timeout: Seconds = 10.0

    @field_validator("service_account")
    @classmethod
    def _key_file(cls, value: Any) -> Any:
        try:
            service_account(value.get_secret_value())
        except ValueError as exc:
            raise PydanticCustomError("cartflow_service_account", str(exc)) from None
        return value

    @model_validator(mode="after")
    def _project(self) -> FcmOptions:
        if self.project_id is None:
            account = service_account(self.service_account.get_secret_value())
            if account.project_id is None:
                raise PydanticCustomError(
                    "cartflow_project",
                    "needs setting 'project_id' (the service account names no project)",
                )
        return self


class FcmProvider(Provider):
    name = "fcm"
    channels = ("push",)
    options_model = FcmOptions
    options: FcmOptions

    def __init__(
        self,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        """``clock`` (seconds since the epoch) dates the assertion and the token's life."""
        super().__init__(**options)
        self.account = service_account(self.options.service_account.get_secret_value())
        project = self.options.project_id or str(self.account.project_id)
        self.url = (
            f"{self.options.base_url.rstrip('/')}/v1/projects/{quote(project, safe='')}"
            "/messages:send"
        )
        self.client = client or httpx.Client(timeout=self.options.timeout)
        self.clock = clock
        self.tokens = AccessTokens(self.account, SCOPE, self.options.token_url, self.client, clock)

    def send(self, message: Message) -> SendResult:
        body = {"message": self.fcm_message(message)}
        for attempt in (1, 2):
            try:
                token = self.tokens.get()
            except TokenRefused as exc:  # FCM was not asked
                return self._no_token(exc)
            try:
                response = self.client.post(
                    self.url, json=body, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.HTTPError as exc:
                return self._failed(exc)
            if response.status_code == 200:
                name = _json(response).get("name")
                return SendResult.accepted(self.name, name if isinstance(name, str) else None)
            if response.status_code == 401 and _error_code(response) is None and attempt == 1:
                self.tokens.drop(token)  # ours expired or was revoked: once with a new one
                continue
            break
        return self._refused(response)

    def fcm_message(self, message: Message) -> dict[str, Any]:
        """The ``message`` object FCM is given for ``message``."""
        meta = message.metadata
        data = {"cartflow_delivery_id": message.delivery_id}
        if meta.get("cart_id"):
            data["cart_id"] = str(meta["cart_id"])
        url = message.parts.get("url")
        if url:
            data["url"] = url
        ttl = self.options.ttl
        android: dict[str, Any] = {"ttl": f"{ttl}s"}
        apns: dict[str, Any] = {"apns-expiration": str(int(self.clock()) + ttl if ttl else 0)}
        if meta.get("cart_id"):
            android["collapse_key"] = apns["apns-collapse-id"] = collapse_id(str(meta["cart_id"]))
        webpush: dict[str, Any] = {"headers": {"TTL": str(ttl)}}
        if url and urlsplit(url).scheme == "https":
            webpush["fcm_options"] = {"link": url}
        built: dict[str, Any] = {
            "token": message.address,
            "notification": {
                "title": message.parts.get("title", ""),
                "body": message.parts.get("body", ""),
            },
            "data": data,
            "android": android,
            "apns": {"headers": apns},
            "webpush": webpush,
        }
        label = analytics_label(meta.get("scenario"), meta.get("step"))
        if label:
            built["fcm_options"] = {"analytics_label": label}
        return built

    def _no_token(self, refused: TokenRefused) -> SendResult:
        if refused.retryable:
            return SendResult.retryable(
                self.name,
                f"no access token ({refused.reason}): nothing was sent",
                refused.retry_after,
            )
        return SendResult.permanent(
            self.name,
            f"token endpoint refused the service account ({refused.reason}): check service_account",
        )

    def _failed(self, exc: httpx.HTTPError) -> SendResult:
        return transport_failure(self.name, exc)

    def _refused(self, response: httpx.Response) -> SendResult:
        status, code = response.status_code, _error_code(response)
        shown = code or _status_word(response)
        kind: Kind
        if shown == "INVALID_ARGUMENT" and _about_token(response):
            kind, meaning = INVALID_TOKEN
        elif code is not None and code in ERROR_CODES:
            kind, meaning = ERROR_CODES[code]
        elif status in HTTP_STATUSES:
            kind, meaning = HTTP_STATUSES[status]
        elif status >= 500:
            kind, meaning = "retryable", "FCM unavailable"
        else:
            kind, meaning = "permanent", ""
        reason = f"HTTP {status}{f', FCM {shown}' if shown else ''}"
        reason += f": {meaning}" if meaning else ""
        if kind == "retryable":
            wait = _retry_after(response)
            if wait is None and code == "QUOTA_EXCEEDED":
                wait = QUOTA_RETRY_AFTER
            return SendResult.retryable(self.name, reason, wait)
        return SendResult.permanent(self.name, reason, invalid_contact=kind == "invalid_contact")

    def close(self) -> None:
        self.client.close()


def collapse_id(cart_id: str) -> str:
    """One id per cart for ``collapse_key`` / ``apns-collapse-id`` (at most 64 bytes): the
    cart id when it is short and plain, otherwise a digest of it."""
    if re.fullmatch(r"[A-Za-z0-9_\-.:]{1,59}", cart_id):
        return f"cart-{cart_id}"
    return f"cart-{hashlib.sha256(cart_id.encode()).hexdigest()[:40]}"


def analytics_label(scenario: Any, step: Any) -> str | None:
    """``scenario-step`` as FCM allows a label (other characters become ``_``, 50 at most)."""
    if not scenario:
        return None
    text = f"{scenario}-{step}" if step else str(scenario)
    label = re.sub(r"[^a-zA-Z0-9\-_.~]", "_", text)[:50]
    return label if LABEL.fullmatch(label) else None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error(response: httpx.Response) -> dict[str, Any]:
    error = _json(response).get("error")
    return error if isinstance(error, dict) else {}


def _details(response: httpx.Response, kind: str) -> list[dict[str, Any]]:
    details = _error(response).get("details")
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, dict) and d.get("@type") == kind]


def _error_code(response: httpx.Response) -> str | None:
    """The FcmError ``errorCode`` of an error answer (only a plain word is ever kept)."""
    for detail in _details(response, FCM_ERROR):
        code = detail.get("errorCode")
        if isinstance(code, str) and WORD.fullmatch(code):
            return code
    return None


def _status_word(response: httpx.Response) -> str | None:
    status = _error(response).get("status")
    return status if isinstance(status, str) and WORD.fullmatch(status) else None


def _about_token(response: httpx.Response) -> bool:
    """Whether an ``INVALID_ARGUMENT`` is about the registration token."""
    for detail in _details(response, BAD_REQUEST):
        violations = detail.get("fieldViolations")
        for violation in violations if isinstance(violations, list) else []:
            if isinstance(violation, dict) and violation.get("field") == "message.token":
                return True
    text = _error(response).get("message")
    return isinstance(text, str) and "registration token" in text.lower()
