"""OAuth 2.0 access tokens for a Google service account (RFC 7523 JWT-bearer grant), with
PyJWT and the injected httpx client — what google-auth does for one scope, without its
``requests`` transport.

An access token is had by signing a JWT with the account's private key (RS256, header
``kid`` the key's id; ``iss`` the account's ``client_email``, ``scope``, ``aud`` the token
URL, ``iat`` now, ``exp`` :data:`ASSERTION_LIFETIME` later) and posting it to the token
URL as ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>``.
:class:`AccessTokens` keeps the answer for every thread of the process (one fetches, the
others wait for it) until :data:`REFRESH_MARGIN` before it expires.

Errors::

    Exception
    └── TokenRefused   no token to be had; ``retryable`` says whether asking later may work
    ValueError         (from :func:`service_account`) a key file cartflow cannot use

Nothing here ever shows the key file, the private key, the assertion or a token: a
message says what is missing or names the HTTP status and the OAuth ``error`` word.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from cartflow.providers.http_answers import retry_after as _retry_after

log = structlog.get_logger("cartflow.providers.google_oauth")

#: An access token is renewed this many seconds before it expires.
REFRESH_MARGIN = 300.0
#: How long the signed assertion is valid (Google allows at most an hour); also the
#: token's life when the answer gives no ``expires_in``.
ASSERTION_LIFETIME = 3600
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: OAuth ``error`` values shown in messages: one plain word.
WORD = re.compile(r"[A-Za-z_]{1,40}")


@dataclass(frozen=True)
class ServiceAccount:
    """The parts of a service-account key file cartflow uses (repr never shows them)."""

    client_email: str
    private_key: RSAPrivateKey
    private_key_id: str | None
    project_id: str | None

    def __repr__(self) -> str:
        return "ServiceAccount(***)"


def service_account(text: str) -> ServiceAccount:
    """The service account in a key file's JSON text; raises :class:`ValueError` saying
    what is wrong, never quoting the text."""
    try:
        found = json.loads(text)
    except ValueError:
        raise ValueError("is not JSON: give the service-account key file's content") from None
    if not isinstance(found, dict):
        raise ValueError("is not a JSON object: give the service-account key file's content")
    email, pem = found.get("client_email"), found.get("private_key")
    if not isinstance(email, str) or not email:
        raise ValueError("has no 'client_email'")
    if not isinstance(pem, str) or not pem:
        raise ValueError("has no 'private_key'")
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("has a 'private_key' that is not a PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("has a 'private_key' that is not an RSA key")
    key_id, project = found.get("private_key_id"), found.get("project_id")
    return ServiceAccount(
        email,
        key,
        key_id if isinstance(key_id, str) and key_id else None,
        project if isinstance(project, str) and project else None,
    )


class TokenRefused(Exception):
    """No access token could be had. ``retryable``: the endpoint was unreachable or busy
    (asking later may work); otherwise it refused the account."""

    def __init__(self, reason: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class AccessToken:
    value: str
    #: When to stop using it (the clock's seconds): its expiry less :data:`REFRESH_MARGIN`.
    renew_at: float

    def __repr__(self) -> str:
        return "AccessToken(***)"


class AccessTokens:
    """The access token of ``account`` for ``scope``, kept and shared by threads."""

    def __init__(
        self,
        account: ServiceAccount,
        scope: str,
        token_url: str,
        client: httpx.Client,
        clock: Callable[[], float],
    ) -> None:
        """``clock`` (seconds since the epoch) dates the assertion and the token's life."""
        self.account = account
        self.scope = scope
        self.token_url = token_url
        self.client = client
        self.clock = clock
        self._token: AccessToken | None = None
        self._lock = threading.Lock()

    def get(self) -> str:
        """The kept token, or a new one when there is none or it is about to expire (one
        thread asks; the others wait for its answer). Raises :class:`TokenRefused`."""
        with self._lock:
            now = self.clock()
            if self._token is None or now >= self._token.renew_at:
                self._token = self._fetch(now)
            return self._token.value

    def drop(self, token: str) -> None:
        """Forget ``token`` if it is still the kept one (the API refused it): the next
        :meth:`get` fetches anew, once, however many threads saw it refused."""
        with self._lock:
            if self._token is not None and self._token.value == token:
                self._token = None
                log.info("access_token_dropped", account_scope=self.scope)

    def assertion(self, now: float) -> str:
        """The signed JWT exchanged for an access token."""
        claims = {
            "iss": self.account.client_email,
            "scope": self.scope,
            "aud": self.token_url,
            "iat": int(now),
            "exp": int(now) + ASSERTION_LIFETIME,
        }
        key_id = self.account.private_key_id
        headers = {"kid": key_id} if key_id else None
        return jwt.encode(claims, self.account.private_key, algorithm="RS256", headers=headers)

    def _fetch(self, now: float) -> AccessToken:
        form = {"grant_type": GRANT_TYPE, "assertion": self.assertion(now)}
        try:
            response = self.client.post(self.token_url, data=form)
        except httpx.HTTPError as exc:
            raise TokenRefused(type(exc).__name__, retryable=True) from None
        status, answer = response.status_code, _json(response)
        value = answer.get("access_token")
        if status == 200 and isinstance(value, str) and value:
            seconds = _seconds(answer.get("expires_in")) or float(ASSERTION_LIFETIME)
            log.info("access_token_fetched", account_scope=self.scope, expires_in=int(seconds))
            return AccessToken(value, now + seconds - REFRESH_MARGIN)
        error = answer.get("error")
        word = f" {error}" if isinstance(error, str) and WORD.fullmatch(error) else ""
        busy = status == 429 or status >= 500 or status == 200
        raise TokenRefused(f"HTTP {status}{word}", busy, _retry_after(response) if busy else None)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None
